-- Resumable uploads: an upload is one batch of files for one merchant; each file's chunks
-- arrive in order and are counted here in the same transaction that stages their rows.

CREATE TABLE uploads (
    id           uuid        PRIMARY KEY,
    merchant_id  uuid        NOT NULL,
    created_by   uuid        NOT NULL,
    status       text        NOT NULL DEFAULT 'uploading',
    -- Rows the merchant had staged before this upload: its rows are numbered after them.
    row_base     bigint      NOT NULL,
    total_rows   bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CONSTRAINT uploads_status_check CHECK (status IN ('uploading', 'complete', 'cancelled')),
    CONSTRAINT uploads_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id),
    CONSTRAINT uploads_created_by_fk FOREIGN KEY (created_by) REFERENCES users (id)
);
-- One unfinished upload per merchant at a time.
CREATE UNIQUE INDEX uploads_one_active_per_merchant ON uploads (merchant_id) WHERE status = 'uploading';

CREATE TABLE upload_files (
    upload_id     uuid    NOT NULL,
    file_index    integer NOT NULL,
    name          text    NOT NULL,
    size          bigint  NOT NULL,
    checksum      text    NOT NULL,
    -- Rows the browser's validation will stage from this file, and those of earlier files.
    rows_expected bigint  NOT NULL,
    row_offset    bigint  NOT NULL,
    rows_received bigint  NOT NULL DEFAULT 0,
    next_seq      integer NOT NULL DEFAULT 0,
    -- What validation found (skipped and rejected rows, columns), for the job's source_info.
    report        jsonb   NOT NULL DEFAULT '{}',
    CONSTRAINT upload_files_pkey PRIMARY KEY (upload_id, file_index),
    CONSTRAINT upload_files_upload_fk FOREIGN KEY (upload_id) REFERENCES uploads (id) ON DELETE CASCADE,
    CONSTRAINT upload_files_rows_check CHECK (rows_received >= 0 AND rows_received <= rows_expected)
);
