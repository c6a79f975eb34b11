-- Long operations on a merchant's staged rows (duplicate check, pre-flight, insert, rollback,
-- clear): one at a time per merchant across every server process. A running operation holds a
-- session-level advisory lock on the merchant for as long as it runs; a row still `running`
-- whose lock nobody holds lost its server, and whoever notices first marks it failed.

CREATE TABLE merchant_operations (
    id            uuid        PRIMARY KEY,
    merchant_id   uuid        NOT NULL,
    kind          text        NOT NULL,
    status        text        NOT NULL DEFAULT 'running',
    -- What it is doing now, in words for the page.
    phase         text        NOT NULL DEFAULT '',
    started_by    uuid,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    -- The figures it produced (the check's counts, overall and per file).
    result        jsonb,
    error_message text,
    CONSTRAINT merchant_operations_kind_check CHECK (kind IN ('check', 'preflight', 'insert', 'rollback', 'clear')),
    CONSTRAINT merchant_operations_status_check CHECK (status IN ('running', 'completed', 'failed')),
    CONSTRAINT merchant_operations_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id),
    CONSTRAINT merchant_operations_started_by_fk FOREIGN KEY (started_by) REFERENCES users (id)
);

CREATE INDEX merchant_operations_merchant_kind_started
    ON merchant_operations (merchant_id, kind, started_at DESC);
-- The lock is the rule; this index is its backstop.
CREATE UNIQUE INDEX merchant_operations_one_running
    ON merchant_operations (merchant_id) WHERE status = 'running';
