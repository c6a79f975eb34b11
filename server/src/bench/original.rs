//! The original system's method, as its document and schema describe it, run beside ours on a
//! copy of the same data in tables of its shape (schema `original` of the scratch database):
//! staging by `COPY` into a table shaped like each file and `INSERT … SELECT`, the check's
//! window-function `UPDATE` and its `EXISTS` updates per 100,000 row numbers, the pre-flight's
//! re-check, the insert's `NOT EXISTS`, the rollback's `DELETE`. Its statements are written
//! here from that description; its functions are not called (they name `public`'s tables).

use app::duplicates::DuplicateStats;
use futures_util::StreamExt;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The original system's schema (its three tables, their indexes, row-level security on
/// `codes`, its functions), as the tests build an original database from.
pub const ORIGINAL_SCHEMA: &str = include_str!("../../tests/fixtures/original_schema.sql");

/// The original schema again, in schema `original` beside whatever `public` holds.
pub fn schema_in_original() -> String {
    let tables = ORIGINAL_SCHEMA
        .replace("CREATE SCHEMA auth;", "CREATE SCHEMA IF NOT EXISTS auth;")
        .replace("CREATE FUNCTION auth.uid()", "CREATE OR REPLACE FUNCTION auth.uid()")
        .replace("public.", "original.");
    format!("CREATE SCHEMA original;\n{tables}")
}

/// The original check's chunk of row numbers.
const CHUNK: i64 = 100_000;

/// The original method for one merchant.
pub struct Original<'a> {
    pub pool: &'a PgPool,
    pub merchant: Uuid,
}

impl Original<'_> {
    /// Stages the files one after another: each file's CSV (blank lines left out) copied into
    /// a temporary table of its own columns, then into staging with sequential row numbers
    /// and the merchant of its `merchant_id` column or of the import. Returns the rows staged.
    pub async fn stage(&self, files: &[Vec<u8>]) -> Result<i64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut staged = 0_i64;
        for file in files {
            let lines = file.split(|b| *b == b'\n').filter(|l| !l.is_empty() && *l != b"\r");
            let header = std::str::from_utf8(file.split(|b| *b == b'\n').next().unwrap_or_default())
                .unwrap_or_default()
                .trim_start_matches('\u{feff}')
                .trim_end();
            let delimiter = [';', '\t'].into_iter().find(|d| header.contains(*d)).unwrap_or(',');
            let columns: Vec<String> = header.split(delimiter).map(|c| c.trim().to_lowercase()).collect();
            let has = |name: &str| columns.iter().any(|c| c == name);
            let field = |name: &str| {
                if has(name) {
                    format!("nullif(btrim(\"{name}\"), '')")
                } else {
                    "NULL".to_owned()
                }
            };
            let merchant = if has("merchant_id") {
                format!("coalesce(nullif(btrim(merchant_id), '')::uuid, '{}')", self.merchant)
            } else {
                format!("'{}'::uuid", self.merchant)
            };
            let batch = if has("batch_code") { field("batch_code") } else { field("batch_id") };
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let table: Vec<String> = columns.iter().map(|c| format!("\"{c}\" text")).collect();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TEMP TABLE original_file ({}) ON COMMIT DROP",
                table.join(", ")
            )))
            .execute(&mut *tx)
            .await?;
            let delimiter = if delimiter == '\t' { "E'\\t'".to_owned() } else { format!("'{delimiter}'") };
            let mut copy = tx
                .copy_in_raw(&format!(
                    "COPY original_file FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER {delimiter})"
                ))
                .await?;
            let mut buffer = Vec::with_capacity(8 << 20);
            for line in lines {
                buffer.extend_from_slice(line);
                buffer.push(b'\n');
                if buffer.len() >= 8 << 20 {
                    copy.send(std::mem::take(&mut buffer)).await?;
                }
            }
            copy.send(buffer).await?;
            copy.finish().await?;
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO original.codes_check_temp
                     (merchant_id, code, serial, sku, points, sku_name, batch_code, price, row_number)
                 SELECT {merchant}, btrim(code), {}, {}, {}, {}, {batch}, {}, ($1 + row_number() OVER ())::integer
                 FROM original_file WHERE btrim(code) <> ''",
                field("serial"),
                field("sku"),
                field("points"),
                field("sku_name"),
                field("price"),
            )))
            .bind(staged)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
            tx.commit().await?;
            staged += inserted;
        }
        Ok(staged)
    }

    /// The check (`mark_duplicates_in_temp`): internal duplicates by a window over the codes,
    /// then database duplicates by `EXISTS` per 100,000 row numbers, in one transaction;
    /// returns its figures.
    pub async fn check(&self) -> Result<DuplicateStats, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let (low, high): (Option<i32>, Option<i32>) = sqlx::query_as(
            "SELECT min(row_number), max(row_number) FROM original.codes_check_temp WHERE merchant_id = $1",
        )
        .bind(self.merchant)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE original.codes_check_temp ct SET internal_dup = true
             FROM (SELECT t.row_number AS rn,
                          ROW_NUMBER() OVER (PARTITION BY t.code ORDER BY t.row_number) AS occurrence
                   FROM original.codes_check_temp t WHERE t.merchant_id = $1) d
             WHERE ct.merchant_id = $1 AND ct.row_number = d.rn AND d.occurrence > 1 AND ct.internal_dup = false",
        )
        .bind(self.merchant)
        .execute(&mut *tx)
        .await?;
        let (low, high) = (i64::from(low.unwrap_or(1)), i64::from(high.unwrap_or(0)));
        let mut from = low;
        while from <= high {
            sqlx::query(
                "UPDATE original.codes_check_temp ct SET existing_dup = true
                 WHERE ct.merchant_id = $1 AND ct.row_number >= $2 AND ct.row_number < $2 + $3
                   AND ct.existing_dup = false
                   AND EXISTS (SELECT 1 FROM original.codes c WHERE c.code = ct.code AND c.merchant_id = ct.merchant_id)",
            )
            .bind(self.merchant)
            .bind(from as i32)
            .bind(CHUNK as i32)
            .execute(&mut *tx)
            .await?;
            from += CHUNK;
        }
        let stats = self.stats(&mut tx).await?;
        tx.commit().await?;
        Ok(stats)
    }

    async fn stats(&self, conn: &mut PgConnection) -> Result<DuplicateStats, sqlx::Error> {
        let (total_rows, internal_duplicates, database_duplicates, both, clean_count) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE internal_dup), count(*) FILTER (WHERE existing_dup),
                    count(*) FILTER (WHERE internal_dup AND existing_dup),
                    count(*) FILTER (WHERE NOT internal_dup AND NOT existing_dup)
             FROM original.codes_check_temp WHERE merchant_id = $1",
        )
        .bind(self.merchant)
        .fetch_one(conn)
        .await?;
        Ok(DuplicateStats { total_rows, internal_duplicates, database_duplicates, both, clean_count })
    }

    /// The pre-flight (`validate_clean_codes_for_insert`): clean rows whose code is in
    /// production now are flagged, then the clean rows counted with the field checks. Returns
    /// the clean count and how many rows fail a field check.
    async fn validate(&self, conn: &mut PgConnection) -> Result<(i64, i64), sqlx::Error> {
        sqlx::query(
            "UPDATE original.codes_check_temp ct SET existing_dup = true
             WHERE ct.merchant_id = $1 AND ct.internal_dup = false AND ct.existing_dup = false
               AND EXISTS (SELECT 1 FROM original.codes c WHERE c.code = ct.code AND c.merchant_id = ct.merchant_id)",
        )
        .bind(self.merchant)
        .execute(&mut *conn)
        .await?;
        sqlx::query_as(
            "SELECT count(*),
                    count(*) FILTER (WHERE code IS NULL OR merchant_id IS NULL
                                        OR (points IS NOT NULL AND btrim(points) <> ''
                                            AND btrim(points) !~ '^[+-]?[0-9]{1,9}$')
                                        OR (price IS NOT NULL AND btrim(price) <> ''
                                            AND btrim(price) !~ '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$')
                                        OR btrim(code) = '')
             FROM original.codes_check_temp
             WHERE merchant_id = $1 AND internal_dup = false AND existing_dup = false",
        )
        .bind(self.merchant)
        .fetch_one(conn)
        .await
    }

    /// The pre-flight on its own, as the insert script runs it before asking for YES.
    pub async fn preflight(&self) -> Result<(i64, i64), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let counts = self.validate(&mut tx).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// The insert (`insert_clean_codes_to_production`), one transaction: its pre-flight, a
    /// job, the clean rows with `NOT EXISTS` stamped with the job, the count compared with the
    /// pre-flight's, the job completed. Returns the job and the rows inserted.
    pub async fn insert(&self) -> Result<(Uuid, i64), String> {
        let fail = |e: sqlx::Error| e.to_string();
        let mut conn = self.pool.acquire().await.map_err(fail)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(fail)?;
        let (expected, invalid) = self.validate(&mut tx).await.map_err(fail)?;
        if invalid > 0 {
            return Err(format!("the original pre-flight refused {invalid} rows"));
        }
        let job: Uuid = sqlx::query_scalar(
            "INSERT INTO original.codes_import_jobs (merchant_id, status, total_codes_to_insert, validation_passed)
             VALUES ($1, 'processing', $2, true) RETURNING id",
        )
        .bind(self.merchant)
        .bind(expected)
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
        let inserted = sqlx::query(
            "INSERT INTO original.codes (merchant_id, code, sku, points, sku_name, batch_code, serial, price,
                                         import_job_id, source)
             SELECT ct.merchant_id, ct.code, ct.sku, nullif(btrim(ct.points), '')::integer, ct.sku_name,
                    ct.batch_code, ct.serial, nullif(btrim(ct.price), '')::numeric, $2, 'csv_import'
             FROM original.codes_check_temp ct
             WHERE ct.merchant_id = $1 AND ct.internal_dup = false AND ct.existing_dup = false
               AND NOT EXISTS (SELECT 1 FROM original.codes c WHERE c.code = ct.code AND c.merchant_id = ct.merchant_id)",
        )
        .bind(self.merchant)
        .bind(job)
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected() as i64;
        if inserted != expected {
            return Err(format!("the original insert added {inserted} codes, its pre-flight counted {expected}"));
        }
        sqlx::query(
            "UPDATE original.codes_import_jobs SET status = 'completed', codes_inserted = $2, completed_at = now()
             WHERE id = $1",
        )
        .bind(job)
        .bind(inserted)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok((job, inserted))
    }

    /// The verification: the job's codes in production.
    pub async fn verify(&self, job: Uuid) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM original.codes WHERE import_job_id = $1")
            .bind(job)
            .fetch_one(self.pool)
            .await
    }

    /// The rollback (`rollback_import_job`): the job locked, its codes deleted, the job marked.
    /// Returns the codes deleted.
    pub async fn rollback(&self, job: Uuid) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT status FROM original.codes_import_jobs WHERE id = $1 FOR UPDATE")
            .bind(job)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM original.codes WHERE import_job_id = $1")
            .bind(job)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        sqlx::query(
            "UPDATE original.codes_import_jobs SET status = 'rolled_back', rolled_back_at = now() WHERE id = $1",
        )
        .bind(job)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The export scripts: the staged rows with their status as CSV, the duplicates only or
    /// all of them. Returns the data rows read.
    pub async fn export(&self, duplicates_only: bool) -> Result<i64, sqlx::Error> {
        let filter = if duplicates_only { "AND (internal_dup OR existing_dup)" } else { "" };
        let statement = format!(
            "COPY (SELECT merchant_id, code, serial, sku, points, sku_name, batch_code, price, row_number,
                          internal_dup, existing_dup, created_at,
                          CASE WHEN internal_dup AND existing_dup THEN 'BOTH_DUPLICATE'
                               WHEN internal_dup THEN 'INTERNAL_DUPLICATE'
                               WHEN existing_dup THEN 'DATABASE_DUPLICATE' ELSE 'CLEAN' END AS status
                   FROM original.codes_check_temp WHERE merchant_id = '{}' {filter} ORDER BY row_number)
             TO STDOUT WITH (FORMAT csv, HEADER true)",
            self.merchant
        );
        let mut conn = self.pool.acquire().await?;
        let mut stream = conn.copy_out_raw(&statement).await?;
        let mut lines = 0_i64;
        while let Some(bytes) = stream.next().await {
            lines += bytes?.iter().filter(|b| **b == b'\n').count() as i64;
        }
        Ok(lines - 1)
    }

    /// Clearing staging (`clear_temp_data.sh`). Returns the rows deleted.
    pub async fn clear(&self) -> Result<i64, sqlx::Error> {
        Ok(sqlx::query("DELETE FROM original.codes_check_temp WHERE merchant_id = $1")
            .bind(self.merchant)
            .execute(self.pool)
            .await?
            .rows_affected() as i64)
    }
}
