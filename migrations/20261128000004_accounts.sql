-- Accounts: merchants, users with roles, which merchants an admin may act for, sessions and
-- login throttling.

CREATE TABLE merchants (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merchants_name_not_blank CHECK (btrim(name) <> ''),
    CONSTRAINT merchants_name_unique UNIQUE (name)
);

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_role_check CHECK (role IN ('ops', 'merchant_admin')),
    CONSTRAINT users_email_lowercase CHECK (email = lower(btrim(email)) AND email <> '')
);
-- Emails are stored lower-cased, so this is case-insensitive uniqueness.
CREATE UNIQUE INDEX users_email_unique ON users (email);

CREATE TABLE user_merchants (
    user_id     uuid NOT NULL,
    merchant_id uuid NOT NULL,
    CONSTRAINT user_merchants_pkey PRIMARY KEY (user_id, merchant_id),
    CONSTRAINT user_merchants_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_merchants_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id)
);
CREATE INDEX idx_user_merchants_merchant ON user_merchants (merchant_id);

-- Server-side sessions (tower-sessions records): a cookie holds only the random id.
CREATE TABLE sessions (
    id          text        PRIMARY KEY,
    data        jsonb       NOT NULL,
    expiry_date timestamptz NOT NULL
);
CREATE INDEX idx_sessions_expiry ON sessions (expiry_date);

-- Failed sign-ins per account (`email:…`) and per client address (`addr:…`).
CREATE TABLE login_throttle (
    key           text        PRIMARY KEY,
    failures      integer     NOT NULL,
    window_start  timestamptz NOT NULL,
    locked_until  timestamptz
);
