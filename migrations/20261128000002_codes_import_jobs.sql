-- The audit trail: one row per import job, never deleted.

CREATE TABLE IF NOT EXISTS codes_import_jobs (
    id                    uuid        PRIMARY KEY,
    merchant_id           uuid        NOT NULL,
    status                text        NOT NULL DEFAULT 'pending',
    total_codes_to_insert bigint,
    codes_inserted        bigint,
    validation_passed     boolean,
    validation_errors     jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            uuid,
    completed_at          timestamptz,
    rolled_back_at        timestamptz,
    error_message         text,
    source_info           jsonb,
    CONSTRAINT codes_import_jobs_status_check CHECK (
        status IN ('pending', 'validating', 'processing', 'completed', 'failed', 'rolled_back')
    ),
    CONSTRAINT codes_import_jobs_counts_check CHECK (
        (total_codes_to_insert IS NULL OR total_codes_to_insert >= 0)
        AND (codes_inserted IS NULL OR codes_inserted >= 0)
    )
);

CREATE INDEX IF NOT EXISTS idx_codes_import_jobs_merchant_created
    ON codes_import_jobs (merchant_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_codes_import_jobs_created ON codes_import_jobs (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_codes_import_jobs_status ON codes_import_jobs (status);
