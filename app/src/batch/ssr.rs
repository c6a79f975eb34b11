//! SQL for staged batches: the read every page shares, and the transitions, each made by the
//! step that causes it, in its transaction or on the connection that holds the merchant.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{Batch, BatchState};
use crate::error::AppError;

/// `SELECT` of [`Batch`]es followed by `$rest` (a literal: the statement stays static). An
/// insert whose merchant lock nobody holds lost its server (its job reads as failed): its batch
/// reads as checked again, as the next operation's start will mark it.
macro_rules! select_batches {
    ($rest:literal) => {
        concat!(
            "SELECT b.id, b.merchant_id,
                    CASE WHEN b.state = 'inserting' AND NOT ",
            crate::operations::ssr::merchant_locked!("b.merchant_id"),
            " THEN 'checked' ELSE b.state END AS state,
                    b.created_at, b.staged_at,
                    COALESCE(s.rows, 0)::bigint AS rows_staged, COALESCE(s.files, 0) AS files,
                    b.figures_operation, fo.finished_at AS checked_at,
                    CASE WHEN b.state = 'inserting' AND NOT ",
            crate::operations::ssr::merchant_locked!("b.merchant_id"),
            " THEN NULL ELSE b.job_id END AS job_id,
                    j.codes_inserted, b.rows_cleared, b.finished_at
             FROM staging_batches b
             LEFT JOIN LATERAL (
                 SELECT sum(f.rows_received) AS rows, count(*) FILTER (WHERE f.rows_received > 0) AS files
                 FROM uploads u JOIN upload_files f ON f.upload_id = u.id
                 WHERE u.batch_id = b.id
             ) s ON true
             LEFT JOIN codes_import_jobs j ON j.id = b.job_id AND b.state = 'inserted'
             LEFT JOIN merchant_operations fo ON fo.id = b.figures_operation AND fo.status = 'completed' ",
            $rest
        )
    };
}

/// The states of a live batch, in SQL (a literal, for `concat!`).
macro_rules! live {
    () => {
        "('open', 'checked', 'inserting', 'inserted')"
    };
}

/// Why a step cannot be taken on the merchant's batch; an [`AppError`] at the boundary.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("This batch was inserted as job {0}. Clear staging to start the next batch.")]
    Inserted(Uuid),
    #[error("Rows were staged or removed after the duplicate check: run it again before inserting.")]
    NotChecked,
    #[error("Nothing is staged for this merchant: upload files first.")]
    NothingStaged,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BatchError {
    /// What the user is told; logs nothing.
    pub fn shown(&self) -> AppError {
        match self {
            BatchError::Inserted(_) | BatchError::NotChecked => AppError::Conflict(self.to_string()),
            BatchError::NothingStaged => AppError::Invalid(self.to_string()),
            BatchError::Database(error) => AppError::of_database(error),
        }
    }
}

impl From<BatchError> for AppError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Database(error) => AppError::from(error),
            error => error.shown(),
        }
    }
}

/// The merchant's latest batch: the live one, or the last cleared or lost one (the page says
/// what became of it), or none.
pub async fn latest(db: impl PgExecutor<'_>, merchant: Uuid) -> Result<Option<Batch>, sqlx::Error> {
    sqlx::query_as(select_batches!("WHERE b.merchant_id = $1 ORDER BY b.created_at DESC LIMIT 1"))
        .bind(merchant)
        .fetch_optional(db)
        .await
}

/// The latest batch of each of `merchants` (of every merchant if `None`) that has one.
pub async fn latest_of(db: impl PgExecutor<'_>, merchants: Option<&[Uuid]>) -> Result<Vec<Batch>, sqlx::Error> {
    sqlx::query_as(select_batches!(
        "WHERE b.id IN (SELECT DISTINCT ON (merchant_id) id FROM staging_batches
                        WHERE $1::uuid[] IS NULL OR merchant_id = ANY($1)
                        ORDER BY merchant_id, created_at DESC)"
    ))
    .bind(merchants)
    .fetch_all(db)
    .await
}

/// The batch a new upload of the merchant stages into, in the upload's transaction: the live
/// one (open again: what its check saw is no longer all that is staged), or a new one.
/// `Inserted` while the inserted batch is not cleared: its rows would mix with the next one's.
pub async fn for_upload(tx: &mut PgConnection, merchant: Uuid) -> Result<Uuid, BatchError> {
    #[derive(sqlx::FromRow)]
    struct Live {
        id: Uuid,
        #[sqlx(try_from = "String")]
        state: BatchState,
        job_id: Option<Uuid>,
    }
    let live: Option<Live> = sqlx::query_as(concat!(
        "SELECT id, state, job_id FROM staging_batches WHERE merchant_id = $1 AND state IN ",
        live!(),
        " FOR UPDATE"
    ))
    .bind(merchant)
    .fetch_optional(&mut *tx)
    .await?;
    match live {
        Some(Live { state: BatchState::Inserted, job_id: Some(job), .. }) => Err(BatchError::Inserted(job)),
        // Open, checked, or inserting by an insert that died with its server (no operation
        // runs: the upload made sure).
        Some(Live { id, .. }) => {
            sqlx::query(
                "UPDATE staging_batches SET state = 'open', job_id = NULL, staged_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(id)
        }
        None => {
            let id = Uuid::new_v4();
            sqlx::query("INSERT INTO staging_batches (id, merchant_id) VALUES ($1, $2)")
                .bind(id)
                .bind(merchant)
                .execute(&mut *tx)
                .await?;
            Ok(id)
        }
    }
}

/// Rows were removed from the batch (a cancelled upload's): its check no longer describes it.
pub async fn rows_removed(db: impl PgExecutor<'_>, batch: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staging_batches SET state = 'open', staged_at = now(), updated_at = now()
         WHERE id = $1 AND state IN ('open', 'checked')",
    )
    .bind(batch)
    .execute(db)
    .await
    .map(|_| ())
}

/// `Inserted` if the merchant's batch was inserted: nothing is left to check or insert.
pub async fn refuse_if_inserted(db: impl PgExecutor<'_>, merchant: Uuid) -> Result<(), BatchError> {
    let job: Option<Uuid> =
        sqlx::query_scalar("SELECT job_id FROM staging_batches WHERE merchant_id = $1 AND state = 'inserted'")
            .bind(merchant)
            .fetch_optional(db)
            .await?;
    job.map_or(Ok(()), |job| Err(BatchError::Inserted(job)))
}

/// The running `operation` (a check, or a pre-flight) saw the batch as it is, on the
/// connection that holds the merchant: its figures describe the batch once it completes.
/// `states` are those the batch may be in: a check makes an open batch checked; a pre-flight
/// only refreshes a checked batch's figures (over rows staged after the check its counts would
/// be wrong).
pub async fn checked_by(
    conn: &mut PgConnection,
    merchant: Uuid,
    operation: Uuid,
    states: &[BatchState],
) -> Result<(), sqlx::Error> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "UPDATE staging_batches SET state = 'checked', figures_operation = $2, updated_at = now()
         WHERE merchant_id = $1 AND state = ANY($3)",
    )
    .bind(merchant)
    .bind(operation)
    .bind(&states)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The checked batch's insert begins as `job`; says why not if the batch is not checked.
pub async fn inserting(conn: &mut PgConnection, merchant: Uuid, job: Uuid) -> Result<(), BatchError> {
    let began = sqlx::query(
        "UPDATE staging_batches SET state = 'inserting', job_id = $2, updated_at = now()
         WHERE merchant_id = $1 AND state = 'checked'",
    )
    .bind(merchant)
    .bind(job)
    .execute(&mut *conn)
    .await?;
    if began.rows_affected() == 1 {
        return Ok(());
    }
    refuse_if_inserted(&mut *conn, merchant).await?;
    let open: bool = sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT FROM staging_batches WHERE merchant_id = $1 AND state IN ",
        live!(),
        ")"
    ))
    .bind(merchant)
    .fetch_one(&mut *conn)
    .await?;
    Err(if open { BatchError::NotChecked } else { BatchError::NothingStaged })
}

/// The job's insert committed (called in its transaction).
pub async fn inserted(db: impl PgExecutor<'_>, job: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staging_batches SET state = 'inserted', updated_at = now() WHERE job_id = $1 AND state = 'inserting'",
    )
    .bind(job)
    .execute(db)
    .await
    .map(|_| ())
}

/// The job's insert failed: its batch is checked again — or open, if the insert's pre-flight
/// found codes that reached production since the check (the check's figures no longer hold).
pub async fn insert_failed(db: impl PgExecutor<'_>, job: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staging_batches b
         SET state = CASE WHEN COALESCE((j.validation_errors ->> 'new_database_duplicates')::bigint, 0) > 0
                          THEN 'open' ELSE 'checked' END,
             staged_at = CASE WHEN COALESCE((j.validation_errors ->> 'new_database_duplicates')::bigint, 0) > 0
                              THEN now() ELSE b.staged_at END,
             job_id = NULL, updated_at = now()
         FROM codes_import_jobs j
         WHERE j.id = $1 AND b.job_id = $1 AND b.state = 'inserting'",
    )
    .bind(job)
    .execute(db)
    .await
    .map(|_| ())
}

/// The job was rolled back (in its transaction): its batch, if not cleared, can be inserted
/// again (its check still describes it; the insert's pre-flight re-checks production).
pub async fn rolled_back(db: impl PgExecutor<'_>, job: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staging_batches SET state = 'checked', job_id = NULL, updated_at = now()
         WHERE job_id = $1 AND state = 'inserted'",
    )
    .bind(job)
    .execute(db)
    .await
    .map(|_| ())
}

/// The merchant's staged rows were deleted, `rows` of them.
pub async fn cleared(db: impl PgExecutor<'_>, merchant: Uuid, rows: i64) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE staging_batches SET state = 'cleared', rows_cleared = $2, finished_at = now(), updated_at = now()
         WHERE merchant_id = $1 AND state IN ",
        live!(),
        ""
    ))
    .bind(merchant)
    .bind(rows)
    .execute(db)
    .await
    .map(|_| ())
}

/// A crash of the database emptied staging: every live batch is lost.
pub async fn lost(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    sqlx::query(concat!(
        "UPDATE staging_batches SET state = 'lost', finished_at = now(), updated_at = now() WHERE state IN ",
        live!(),
        ""
    ))
    .execute(db)
    .await
    .map(|done| done.rows_affected())
}
