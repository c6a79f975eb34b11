-- Staging: the rows of one merchant's batch, in upload order, with their duplicate flags.

CREATE TABLE IF NOT EXISTS codes_check_temp (
    merchant_id  uuid        NOT NULL,
    row_number   bigint      NOT NULL,
    code         text        NOT NULL,
    serial       text,
    sku          text,
    points       numeric,
    sku_name     text,
    batch_code   text,
    price        numeric,
    internal_dup boolean     NOT NULL DEFAULT false,
    existing_dup boolean     NOT NULL DEFAULT false,
    upload_id    uuid,
    source_file  text,
    source_line  bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT codes_check_temp_pkey PRIMARY KEY (merchant_id, row_number),
    CONSTRAINT codes_check_temp_code_not_blank CHECK (btrim(code) <> '')
);

-- Duplicate check: codes grouped per merchant in row order (internal) and probed against
-- codes (existing).
CREATE INDEX IF NOT EXISTS idx_codes_check_temp_merchant_code
    ON codes_check_temp (merchant_id, code, row_number);
-- Review and insert: the merchant's rows by status.
CREATE INDEX IF NOT EXISTS idx_codes_check_temp_merchant_flags
    ON codes_check_temp (merchant_id, internal_dup, existing_dup);
