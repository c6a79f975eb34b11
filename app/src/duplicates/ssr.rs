//! Set-based SQL for the duplicate check, its figures, the preview and the pre-flight.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::{CheckFigures, DuplicateStats, FileStats, PreviewPage, PreviewRow, ReviewState, RowStatus};
use crate::{
    batch::{
        ssr::{self as batch, BatchError},
        Batch, BatchState,
    },
    error::AppError,
    operations::{ssr as operations, Operation},
};

/// Sets `internal_dup` and `existing_dup` on every staged row of `merchant`, set-wise, in one
/// transaction. Idempotent (a rerun on unchanged data writes nothing); correct after more rows
/// were staged or production changed. Returns how many rows changed. The caller holds the
/// merchant's operation lock, so no other statement moves these rows between the steps.
///
/// A row is an internal duplicate when an earlier row (in `row_number` order) has its code:
/// 1. the 64-bit hashes of the codes that occur more than once, from a parallel sort of
///    15 M integers (a sort of the codes themselves compares long shared prefixes byte by
///    byte, and was most of the check's time);
/// 2. for the codes with such a hash (a few % of the rows), the exact codes that repeat and
///    the first row of each: a hash collision of two different codes lands here and is
///    grouped apart;
/// 3. one pass over the staged rows with hash joins against those codes and the merchant's
///    codes in production gives the rows whose flags change, in physical order;
/// 4. those rows are rewritten by `ctid`.
///
/// Steps 1 and 2 write to unlogged tables made and dropped inside the transaction, so that
/// PostgreSQL's parallel workers can read them (they cannot read a temporary table); a failed
/// or killed check leaves none behind. With `operation` (the pool and the operation's id), each
/// part records itself as the operation's phase, for the page.
pub async fn mark_duplicates(
    conn: &mut PgConnection,
    merchant: Uuid,
    operation: Option<(&PgPool, Uuid)>,
) -> Result<u64, sqlx::Error> {
    let on_phase = async |phase: &str| {
        if let Some((pool, id)) = operation {
            operations::record_phase(pool, id, phase).await;
        }
    };
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // The sorts and hash tables stay in memory (256 MB for each of the two parallel workers
    // and the leader); the default parallel costs kept the planner from choosing the workers
    // for these CREATE TABLE AS, which then took 1.5× as long.
    for setting in
        ["SET LOCAL work_mem = '256MB'", "SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0"]
    {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let hashes = format!("check_repeated_hashes_{}", merchant.simple());
    let repeats = format!("check_repeated_codes_{}", merchant.simple());
    // Sent as plain SQL: a CREATE TABLE AS takes no parameters, and the names differ per
    // merchant (no point preparing them). Only a `Uuid` is spliced in.
    let repeated = vec![
        format!(
            "CREATE UNLOGGED TABLE {hashes} AS
             SELECT hashtextextended(code, 0) AS hash FROM codes_check_temp WHERE merchant_id = '{merchant}'
             GROUP BY 1 HAVING count(*) > 1"
        ),
        format!("ANALYZE {hashes}"),
        format!(
            "CREATE UNLOGGED TABLE {repeats} AS
             SELECT code, min(row_number) AS first_row FROM codes_check_temp
             WHERE merchant_id = '{merchant}' AND hashtextextended(code, 0) IN (SELECT hash FROM {hashes})
             GROUP BY code HAVING count(*) > 1"
        ),
        format!("ANALYZE {repeats}"),
    ];
    let changes = vec![
        format!(
            "CREATE TEMP TABLE check_changes ON COMMIT DROP AS
             SELECT tid, internal, existing
             FROM (SELECT s.ctid AS tid, s.internal_dup, s.existing_dup,
                          coalesce(s.row_number > r.first_row, false) AS internal,
                          c.code IS NOT NULL AS existing
                   FROM codes_check_temp s
                   LEFT JOIN (SELECT code FROM codes WHERE merchant_id = '{merchant}') c ON c.code = s.code
                   LEFT JOIN {repeats} r ON r.code = s.code
                   WHERE s.merchant_id = '{merchant}') f
             WHERE internal_dup <> internal OR existing_dup <> existing
             ORDER BY tid"
        ),
        format!("DROP TABLE {hashes}, {repeats}"),
    ];
    for (phase, statements) in [
        ("Finding the codes that repeat within the batch", repeated),
        ("Comparing with the codes in production", changes),
    ] {
        on_phase(phase).await;
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
        }
    }
    // Rewriting the changed rows in physical order, each found by its ctid, dirties each page
    // once while it is in memory; a hash join would visit them in hash order, and with stock
    // shared_buffers every page was written out and read again (measured: twice as slow).
    on_phase("Writing the flags").await;
    sqlx::query("SET LOCAL enable_hashjoin = off").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL enable_mergejoin = off").execute(&mut *tx).await?;
    let changed = sqlx::query(
        "UPDATE codes_check_temp t SET internal_dup = f.internal, existing_dup = f.existing
         FROM check_changes f
         WHERE t.ctid = f.tid AND t.merchant_id = $1",
    )
    .bind(merchant)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected())
}

/// The figures over the merchant's staged rows as they are flagged now.
pub async fn stats(conn: &mut PgConnection, merchant: Uuid) -> Result<DuplicateStats, sqlx::Error> {
    Ok(figures(conn, merchant).await?.overall)
}

/// The figures per source file (in row order) and overall, as the rows are flagged now.
pub async fn figures(conn: &mut PgConnection, merchant: Uuid) -> Result<CheckFigures, sqlx::Error> {
    let rows = sqlx::query_as::<_, (Option<String>, i64, i64, i64, i64, i64, i64)>(
        "SELECT source_file,
                count(*),
                count(*) FILTER (WHERE internal_dup),
                count(*) FILTER (WHERE existing_dup),
                count(*) FILTER (WHERE internal_dup AND existing_dup),
                count(*) FILTER (WHERE NOT internal_dup AND NOT existing_dup),
                max(row_number)
         FROM codes_check_temp WHERE merchant_id = $1
         GROUP BY upload_id, source_file
         ORDER BY min(row_number)",
    )
    .bind(merchant)
    .fetch_all(conn)
    .await?;
    let last_row = rows.iter().map(|r| r.6).max();
    let files = rows
        .into_iter()
        .map(|(file, total_rows, internal_duplicates, database_duplicates, both, clean_count, _)| FileStats {
            source_file: file.unwrap_or_else(|| "(no file)".into()),
            stats: DuplicateStats { total_rows, internal_duplicates, database_duplicates, both, clean_count },
        })
        .collect();
    Ok(CheckFigures::from_files(files, last_row))
}

/// The highest `row_number` staged for the merchant (the primary key answers it at once).
pub(crate) async fn last_row(db: impl sqlx::PgExecutor<'_>, merchant: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(row_number) FROM codes_check_temp WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(db)
        .await
}

/// Why the check or the pre-flight cannot run, with what is known of it; an [`AppError`] at the
/// boundary. (What they find — duplicates, rows the pre-flight refuses — is data, not an error.)
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("Nothing is staged for this merchant: upload files first.")]
    NothingStaged,
    /// Another operation runs for the merchant.
    #[error(transparent)]
    Busy(#[from] operations::OperationError),
    /// An upload for the merchant is unfinished.
    #[error(transparent)]
    Upload(#[from] crate::staging::ssr::StagingError),
    #[error("the operation {0} vanished as it started")]
    Vanished(Uuid),
    #[error("the figures could not be recorded: {0}")]
    Record(#[from] serde_json::Error),
    /// The batch was inserted: nothing is left to check.
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl CheckError {
    /// What the operation's record (and the page) says of this error; nothing is logged.
    pub(crate) fn shown(&self) -> AppError {
        match self {
            CheckError::Database(error)
            | CheckError::Busy(operations::OperationError::Database(error))
            | CheckError::Upload(crate::staging::ssr::StagingError::Database(error)) => AppError::of_database(error),
            CheckError::Batch(error) => error.shown(),
            CheckError::NothingStaged => AppError::Invalid(self.to_string()),
            CheckError::Busy(_) | CheckError::Upload(_) => AppError::Conflict(self.to_string()),
            CheckError::Vanished(_) | CheckError::Record(_) => AppError::Internal,
        }
    }
}

impl From<CheckError> for AppError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Busy(error) => AppError::from(error),
            CheckError::Upload(error) => AppError::from(error),
            CheckError::Batch(error) => AppError::from(error),
            CheckError::Database(error) => AppError::from(error),
            CheckError::Vanished(_) | CheckError::Record(_) => {
                tracing::error!(%error, "the duplicate check failed");
                AppError::Internal
            }
            CheckError::NothingStaged => error.shown(),
        }
    }
}

/// Starts the check in the background and returns its operation; `Busy` while another
/// operation runs for the merchant, `Upload` while an upload is unfinished, `NothingStaged`.
pub async fn start_check(pool: &PgPool, merchant: Uuid, user: Option<Uuid>) -> Result<Operation, CheckError> {
    crate::staging::ssr::ensure_no_upload(pool, merchant, "checking duplicates").await?;
    batch::refuse_if_inserted(pool, merchant).await?;
    if last_row(pool, merchant).await?.is_none() {
        return Err(CheckError::NothingStaged);
    }
    let running = operations::begin(pool, merchant, "check", user).await?;
    let id = running.id;
    let background = pool.clone();
    let span = running.span();
    tokio::spawn(
        async move {
            let mut running = running;
            let outcome = run_check(&background, &mut running).await;
            running.finish(outcome.map_err(AppError::from)).await;
        }
        .instrument(span),
    );
    operations::latest(pool, merchant, "check").await?.filter(|op| op.id == id).ok_or(CheckError::Vanished(id))
}

/// The check's work, on the connection that holds the merchant's lock.
pub async fn run_check(pool: &PgPool, running: &mut operations::Running) -> Result<serde_json::Value, CheckError> {
    let changed = mark_duplicates(&mut running.conn, running.merchant, Some((pool, running.id))).await?;
    running.phase(pool, "Counting per file").await;
    let figures = figures(&mut running.conn, running.merchant).await?;
    batch::checked_by(&mut running.conn, running.merchant, running.id, &[BatchState::Open, BatchState::Checked])
        .await?;
    running.rows_moved(figures.overall.total_rows, running.started());
    tracing::info!(merchant = %running.merchant, changed, rows = figures.overall.total_rows, "duplicate check done");
    Ok(serde_json::to_value(&figures)?)
}

/// The review of the merchant's batch: the batch, its latest check, the figures that describe
/// it (or why they no longer do), and any other operation running. Five queries, the first a
/// probe of staging's sentinel row; none takes a connection out of the pool, and none writes
/// unless a crash of the database emptied staging (then the first read marks it lost, once).
pub async fn review_state(pool: &PgPool, merchant: Uuid) -> Result<ReviewState, AppError> {
    // A crash of the database may have emptied staging under the batch (one index probe).
    crate::staging::ssr::recover_lost_staging(pool).await?;
    let batch = batch::latest(pool, merchant).await?;
    let Some(current) = batch.as_ref().filter(|b| b.state.is_live()) else {
        // Nothing staged, or the last batch cleared or lost: no check, no figures of it.
        let running = operations::running(pool, merchant).await?;
        return Ok(ReviewState {
            merchant_id: merchant,
            batch,
            check: None,
            figures: None,
            checked_at: None,
            stale: None,
            running,
        });
    };
    // The batch's checks are those started after it was.
    let check = operations::latest(pool, merchant, "check").await?.filter(|op| op.started_at >= current.created_at);
    let (figures, checked_at) = match current.figures_operation {
        Some(operation) => figures_of(pool, operation).await?.unzip(),
        None => (None, None),
    };
    let stale = figures.as_ref().filter(|_| current.stale()).map(|figures| stale_reason(current, figures));
    let running = operations::running(pool, merchant).await?.filter(|op| op.kind != "check");
    Ok(ReviewState { merchant_id: merchant, batch, check, figures, checked_at, stale, running })
}

/// The figures a completed check or pre-flight recorded, and when it finished.
async fn figures_of(pool: &PgPool, operation: Uuid) -> Result<Option<(CheckFigures, DateTime<Utc>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Recorded {
        kind: String,
        result: serde_json::Value,
        finished_at: DateTime<Utc>,
    }
    let recorded: Option<Recorded> = sqlx::query_as(
        "SELECT kind, result, finished_at FROM merchant_operations
         WHERE id = $1 AND status = 'completed' AND result IS NOT NULL AND finished_at IS NOT NULL",
    )
    .bind(operation)
    .fetch_optional(pool)
    .await?;
    Ok(recorded.and_then(|r| {
        let figures = if r.kind == "preflight" {
            serde_json::from_value::<crate::jobs::preflight::PreflightRecord>(r.result)
                .ok()
                .map(|record| record.figures)
        } else {
            serde_json::from_value::<CheckFigures>(r.result).ok()
        };
        figures.map(|figures| (figures, r.finished_at))
    }))
}

/// Why a batch's figures no longer describe it, in words.
fn stale_reason(batch: &Batch, figures: &CheckFigures) -> String {
    let at = batch.staged_at.format("%H:%M:%S UTC");
    let checked = figures.overall.total_rows;
    let now = batch.rows_staged;
    let what = if now > checked {
        format!("{} rows were staged after this check (at {at})", now - checked)
    } else if now < checked {
        format!("{} rows were removed after this check (at {at})", checked - now)
    } else {
        format!("The staged rows changed after this check (at {at})")
    };
    format!("{what}: run it again before inserting.")
}

/// `limit` staged rows of `merchant` after `after`, in row order, of one status or all:
/// a walk along the primary key from `after`, so page 100,000 costs what page 1 does.
pub async fn preview(
    pool: &PgPool,
    merchant: Uuid,
    status: Option<RowStatus>,
    after: i64,
    limit: i64,
) -> Result<PreviewPage, sqlx::Error> {
    let (internal, existing) = status.map(RowStatus::flags).unzip();
    let rows = sqlx::query_as::<_, PreviewRow>(
        "SELECT row_number, code, serial, sku, points::text AS points, sku_name, batch_code, price::text AS price,
                internal_dup, existing_dup, source_file, source_line
         FROM codes_check_temp
         WHERE merchant_id = $1 AND row_number > $2
           AND ($3::boolean IS NULL OR (internal_dup = $3 AND existing_dup = $4))
         ORDER BY row_number
         LIMIT $5",
    )
    .bind(merchant)
    .bind(after)
    .bind(internal)
    .bind(existing)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let mut rows = rows;
    let next_after = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.row_number)
    } else {
        None
    };
    Ok(PreviewPage { rows, next_after })
}
