-- The staged batch: what a merchant has staged, as one record with one state that every page
-- reads. Until now the pages pieced it together from uploads, the latest check and the latest
-- clear, and said things that were no longer true (a cleared batch's figures, an inserted
-- batch offered for insert again).
--
--   open      uploads arrive (or arrived) and no check has seen exactly what is staged
--   checked   a check (or a pre-flight after it) saw exactly the staged rows: `figures_operation`
--   inserting the insert of `job_id` runs
--   inserted  `job_id` inserted its clean rows; the staged rows wait to be cleared
--   cleared   the staged rows were deleted (`rows_cleared` of them)
--   lost      a crash of the database emptied staging (unlogged) under it
--
-- A merchant has at most one live batch (open, checked, inserting, inserted).

CREATE TABLE staging_batches (
    id                uuid        PRIMARY KEY,
    merchant_id       uuid        NOT NULL,
    state             text        NOT NULL DEFAULT 'open',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- The operation (check or pre-flight) whose figures describe the batch: set when checked,
    -- kept when rows arrive after it (the page says the figures are stale, and why).
    figures_operation uuid,
    -- When rows were last staged or removed: a check that began before this is stale.
    staged_at         timestamptz NOT NULL DEFAULT now(),
    job_id            uuid,
    rows_cleared      bigint,
    finished_at       timestamptz,
    CONSTRAINT staging_batches_state_check
        CHECK (state IN ('open', 'checked', 'inserting', 'inserted', 'cleared', 'lost')),
    CONSTRAINT staging_batches_job_check CHECK (state NOT IN ('inserting', 'inserted') OR job_id IS NOT NULL),
    CONSTRAINT staging_batches_checked_check CHECK (state <> 'checked' OR figures_operation IS NOT NULL),
    CONSTRAINT staging_batches_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id),
    CONSTRAINT staging_batches_figures_fk FOREIGN KEY (figures_operation) REFERENCES merchant_operations (id)
);
CREATE UNIQUE INDEX staging_batches_one_live_per_merchant
    ON staging_batches (merchant_id) WHERE state IN ('open', 'checked', 'inserting', 'inserted');
CREATE INDEX staging_batches_merchant_created ON staging_batches (merchant_id, created_at DESC);

ALTER TABLE uploads ADD COLUMN batch_id uuid,
    ADD CONSTRAINT uploads_batch_fk FOREIGN KEY (batch_id) REFERENCES staging_batches (id);
CREATE INDEX uploads_batch ON uploads (batch_id);

-- A file staged again in the same batch by the user's explicit choice (the job's files say so).
ALTER TABLE upload_files ADD COLUMN restaged boolean NOT NULL DEFAULT false;

-- One word for done: uploads said 'complete' where operations and jobs say 'completed'.
ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
UPDATE uploads SET status = 'completed' WHERE status = 'complete';
ALTER TABLE uploads
    ADD CONSTRAINT uploads_status_check CHECK (status IN ('uploading', 'completed', 'cancelled', 'lost'));

-- What is staged now becomes each merchant's open batch: the uploads since the merchant's last
-- completed clear (the rows of earlier ones were deleted), or, for rows of no known upload, a
-- batch of their own. No check is taken as current: the first check of the batch says.
CREATE TEMPORARY TABLE live_batches ON COMMIT DROP AS
SELECT merchant_id, gen_random_uuid() AS id
FROM (SELECT merchant_id FROM codes_check_temp
      UNION
      SELECT merchant_id FROM uploads WHERE status = 'uploading') staged
GROUP BY merchant_id;

INSERT INTO staging_batches (id, merchant_id) SELECT id, merchant_id FROM live_batches;

UPDATE uploads u SET batch_id = b.id
FROM live_batches b
WHERE u.merchant_id = b.merchant_id AND u.status <> 'lost'
  AND u.created_at > COALESCE((SELECT max(o.started_at) FROM merchant_operations o
                               WHERE o.merchant_id = u.merchant_id AND o.kind = 'clear' AND o.status = 'completed'),
                              '-infinity');
