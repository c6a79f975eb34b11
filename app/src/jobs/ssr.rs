//! SQL for import jobs.

use sqlx::PgExecutor;

use super::JobSummary;

/// The newest `limit` jobs, newest first.
pub async fn list_jobs(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<JobSummary>, sqlx::Error> {
    sqlx::query_as::<_, JobSummary>(
        r#"
        SELECT j.id, j.merchant_id, j.status, j.total_codes_to_insert, j.codes_inserted,
               j.created_at, j.created_by, j.completed_at, j.rolled_back_at, j.error_message,
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
        ORDER BY j.created_at DESC, j.id
        LIMIT $1
        "#,
    )
    .bind(limit)
    .fetch_all(db)
    .await
}
