-- Adopts the original system's staging table. A database of the original system has its own
-- `codes_check_temp` (no upload, file or line columns, text `points` and `price`, an `integer`
-- row number, two secondary indexes, possibly a batch its scripts staged). The migrations before
-- this one left such a table in place (`CREATE TABLE IF NOT EXISTS`), and every chunk then failed.
--
-- What happens to it, once:
-- - it is renamed `codes_check_temp_original` and kept whole, logged again (an earlier migration
--   made the table of that name unlogged), with its rows and indexes: nothing of it is dropped or
--   rewritten in place;
-- - a new `codes_check_temp` of this app's shape takes its name;
-- - every row the upload would have staged (a merchant, a code that is not blank, `points` and
--   `price` empty or plain decimals) is carried into the new staging as one batch per merchant,
--   in the original `row_number` order, fields trimmed as the upload trims them, duplicate flags
--   reset (the duplicate check runs again), under a completed upload of one file named
--   `codes_check_temp_original`, the original row number as its line;
-- - rows that cannot be staged stay only in `codes_check_temp_original`;
-- - every merchant the original tables name gets a row in `merchants` (named after its id;
--   `server rename-merchant` gives it its name), so its jobs, codes and batch can be reached;
-- - `original_staging_adoption` records what was carried; the server logs it at every start while
--   `codes_check_temp_original` exists.

ALTER TABLE uploads ALTER COLUMN created_by DROP NOT NULL;
COMMENT ON COLUMN uploads.created_by IS 'NULL for the batch carried over from the original staging table';

CREATE TABLE original_staging_adoption (
    merchant_id  uuid        NOT NULL,
    upload_id    uuid,
    rows_carried bigint      NOT NULL,
    rows_kept    bigint      NOT NULL,
    adopted_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT original_staging_adoption_pkey PRIMARY KEY (merchant_id)
);

DO $$
DECLARE
    adopted_name constant text := 'codes_check_temp_original';
BEGIN
    -- This app's staging table has `upload_id`; the original's does not.
    IF EXISTS (SELECT FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'codes_check_temp'
                 AND column_name = 'upload_id') THEN
        RETURN;
    END IF;

    EXECUTE format('ALTER TABLE codes_check_temp RENAME TO %I', adopted_name);
    EXECUTE format('ALTER TABLE %I SET LOGGED', adopted_name);
    EXECUTE format('ALTER TABLE %I RESET (fillfactor)', adopted_name);

    CREATE UNLOGGED TABLE codes_check_temp (
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
    ) WITH (fillfactor = 75);

    -- Merchants named by any original table (codes can be large: one pass, once).
    INSERT INTO merchants (id, name)
    SELECT m, 'Merchant ' || m
    FROM (SELECT merchant_id FROM codes_check_temp_original WHERE merchant_id IS NOT NULL
          UNION SELECT merchant_id FROM codes_import_jobs
          UNION SELECT merchant_id FROM codes) AS named(m)
    ON CONFLICT DO NOTHING;

    CREATE TEMPORARY TABLE carried ON COMMIT DROP AS
    SELECT o.merchant_id,
           row_number() OVER (PARTITION BY o.merchant_id ORDER BY o.row_number NULLS LAST, o.ctid) AS row_number,
           btrim(o.code) AS code,
           nullif(btrim(o.serial), '') AS serial,
           nullif(btrim(o.sku), '') AS sku,
           nullif(btrim(o.points::text), '')::numeric AS points,
           nullif(btrim(o.sku_name), '') AS sku_name,
           nullif(btrim(o.batch_code), '') AS batch_code,
           nullif(btrim(o.price::text), '')::numeric AS price,
           o.row_number AS source_line
    FROM codes_check_temp_original o
    WHERE o.merchant_id IS NOT NULL
      AND btrim(o.code) <> ''
      AND coalesce(btrim(o.points::text), '') ~ '^([+-]?([0-9]+([.][0-9]*)?|[.][0-9]+))?$'
      AND coalesce(btrim(o.price::text), '') ~ '^([+-]?([0-9]+([.][0-9]*)?|[.][0-9]+))?$'
      AND length(btrim(o.points::text)) <= 40 IS NOT FALSE
      AND length(btrim(o.price::text)) <= 40 IS NOT FALSE;

    CREATE TEMPORARY TABLE batches ON COMMIT DROP AS
    SELECT merchant_id, gen_random_uuid() AS upload_id, count(*) AS rows FROM carried GROUP BY merchant_id;

    INSERT INTO uploads (id, merchant_id, created_by, status, row_base, total_rows, finished_at)
    SELECT upload_id, merchant_id, NULL, 'complete', 0, rows, now() FROM batches;
    INSERT INTO upload_files (upload_id, file_index, name, size, checksum, rows_expected, row_offset,
                              rows_received, next_seq, report)
    SELECT upload_id, 0, adopted_name, 0, 'original-staging', rows, 0, rows, 1,
           jsonb_build_object('adopted_from', adopted_name)
    FROM batches;

    INSERT INTO codes_check_temp (merchant_id, row_number, code, serial, sku, points, sku_name, batch_code,
                                  price, upload_id, source_file, source_line)
    SELECT c.merchant_id, c.row_number, c.code, c.serial, c.sku, c.points, c.sku_name, c.batch_code, c.price,
           b.upload_id, adopted_name, c.source_line
    FROM carried c JOIN batches b USING (merchant_id)
    ORDER BY c.merchant_id, c.row_number;

    INSERT INTO original_staging_adoption (merchant_id, upload_id, rows_carried, rows_kept)
    SELECT coalesce(b.merchant_id, o.merchant_id), b.upload_id, coalesce(b.rows, 0), coalesce(o.rows, 0) - coalesce(b.rows, 0)
    FROM batches b
    FULL JOIN (SELECT coalesce(merchant_id, '00000000-0000-0000-0000-000000000000') AS merchant_id, count(*) AS rows
               FROM codes_check_temp_original GROUP BY 1) o USING (merchant_id);
END
$$;
