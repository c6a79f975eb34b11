//! SQL for import jobs.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::JobSummary;

/// The newest `limit` jobs of the merchants in `merchants` (every merchant if `None`).
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    merchants: Option<&[Uuid]>,
    limit: i64,
) -> Result<Vec<JobSummary>, sqlx::Error> {
    sqlx::query_as::<_, JobSummary>(
        r#"
        SELECT j.id, j.merchant_id, m.name AS merchant_name, j.status, j.total_codes_to_insert,
               j.codes_inserted, j.created_at, j.created_by, u.email AS created_by_email,
               j.completed_at, j.rolled_back_at, j.error_message,
               COALESCE(
                   ARRAY(
                       SELECT f ->> 'name'
                       FROM jsonb_array_elements(
                           CASE WHEN jsonb_typeof(j.source_info -> 'files') = 'array'
                                THEN j.source_info -> 'files' ELSE '[]'::jsonb END
                       ) WITH ORDINALITY AS t(f, ord)
                       WHERE f ->> 'name' IS NOT NULL
                       ORDER BY ord
                   ),
                   '{}'
               ) AS files
        FROM codes_import_jobs j
        LEFT JOIN merchants m ON m.id = j.merchant_id
        LEFT JOIN users u ON u.id = j.created_by
        WHERE $1::uuid[] IS NULL OR j.merchant_id = ANY($1)
        ORDER BY j.created_at DESC, j.id
        LIMIT $2
        "#,
    )
    .bind(merchants)
    .bind(limit)
    .fetch_all(db)
    .await
}
