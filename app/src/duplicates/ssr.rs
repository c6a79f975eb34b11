//! Set-based SQL for the duplicate check.

use sqlx::PgConnection;
use uuid::Uuid;

use super::DuplicateStats;

/// Sets `internal_dup` and `existing_dup` on every staged row of `merchant` in one statement:
/// a window over the merchant's rows by code in `row_number` order, and a hash join against
/// the merchant's codes in production. Only rows whose flags change are written, so a rerun
/// on unchanged data writes nothing. Idempotent; correct after more rows were staged or
/// production changed. Returns how many rows changed.
pub async fn mark_duplicates(conn: &mut PgConnection, merchant: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // The window's sort and the joins' hash tables fit in memory instead of spilling to disk.
    sqlx::query("SET LOCAL work_mem = '512MB'").execute(&mut *tx).await?;
    let changed = sqlx::query(
        "WITH flags AS (
             SELECT s.row_number,
                    row_number() OVER (PARTITION BY s.code ORDER BY s.row_number) > 1 AS internal,
                    c.code IS NOT NULL AS existing
             FROM codes_check_temp s
             LEFT JOIN (SELECT code FROM codes WHERE merchant_id = $1) c ON c.code = s.code
             WHERE s.merchant_id = $1
         )
         UPDATE codes_check_temp t
         SET internal_dup = f.internal, existing_dup = f.existing
         FROM flags f
         WHERE t.merchant_id = $1 AND t.row_number = f.row_number
           AND (t.internal_dup <> f.internal OR t.existing_dup <> f.existing)",
    )
    .bind(merchant)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected())
}

/// The figures over the merchant's staged rows as they are flagged now.
pub async fn stats(conn: &mut PgConnection, merchant: Uuid) -> Result<DuplicateStats, sqlx::Error> {
    sqlx::query_as::<_, DuplicateStats>(
        "SELECT count(*) AS total_rows,
                count(*) FILTER (WHERE internal_dup) AS internal_duplicates,
                count(*) FILTER (WHERE existing_dup) AS database_duplicates,
                count(*) FILTER (WHERE internal_dup AND existing_dup) AS both,
                count(*) FILTER (WHERE NOT internal_dup AND NOT existing_dup) AS clean_count
         FROM codes_check_temp WHERE merchant_id = $1",
    )
    .bind(merchant)
    .fetch_one(conn)
    .await
}
