//! Set-based SQL for the duplicate check, its figures, the preview and the pre-flight.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{CheckFigures, DuplicateStats, FileStats, Preflight, PreviewPage, PreviewRow, ReviewState, RowStatus};
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
async fn last_row(db: impl sqlx::PgExecutor<'_>, merchant: Uuid) -> Result<Option<i64>, sqlx::Error> {
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
    tokio::spawn(async move {
        let mut running = running;
        let outcome = run_check(&background, &mut running).await;
        running.finish(outcome.map_err(AppError::from)).await;
    });
    operations::latest(pool, merchant, "check").await?.filter(|op| op.id == id).ok_or(CheckError::Vanished(id))
}

/// The check's work, on the connection that holds the merchant's lock.
pub async fn run_check(pool: &PgPool, running: &mut operations::Running) -> Result<serde_json::Value, CheckError> {
    let changed = mark_duplicates(&mut running.conn, running.merchant, Some((pool, running.id))).await?;
    running.phase(pool, "Counting per file").await;
    let figures = figures(&mut running.conn, running.merchant).await?;
    batch::checked_by(&mut running.conn, running.merchant, running.id, &[BatchState::Open, BatchState::Checked])
        .await?;
    tracing::info!(merchant = %running.merchant, changed, rows = figures.overall.total_rows, "duplicate check done");
    Ok(serde_json::to_value(&figures)?)
}

/// The review of the merchant's batch: the batch, its latest check, the figures that describe
/// it (or why they no longer do), and any other operation running. Four queries, none of which
/// writes or takes a connection out of the pool.
pub async fn review_state(pool: &PgPool, merchant: Uuid) -> Result<ReviewState, AppError> {
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
            serde_json::from_value::<PreflightRecord>(r.result).ok().map(|record| record.figures)
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

/// What a pre-flight operation records: its answer and the figures after it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PreflightRecord {
    preflight: Preflight,
    figures: CheckFigures,
}

/// The pre-flight as an operation of its own (it holds the merchant's lock while it runs).
pub async fn run_preflight(pool: &PgPool, merchant: Uuid, user: Option<Uuid>) -> Result<Preflight, CheckError> {
    crate::staging::ssr::ensure_no_upload(pool, merchant, "inserting").await?;
    batch::refuse_if_inserted(pool, merchant).await?;
    let mut running = operations::begin(pool, merchant, "preflight", user).await?;
    running.phase(pool, "Re-checking database duplicates and fields").await;
    let outcome = async {
        let preflight = validate_clean_codes_for_insert(&mut running.conn, merchant).await?;
        let figures = figures(&mut running.conn, merchant).await?;
        batch::checked_by(&mut running.conn, merchant, running.id, &[BatchState::Checked]).await?;
        Ok::<_, CheckError>(preflight_record(preflight, figures))
    }
    .await;
    match outcome {
        Ok((preflight, record)) => {
            running.finish(Ok(record)).await;
            Ok(preflight)
        }
        Err(error) => {
            running.finish(Err(error.shown())).await;
            Err(error)
        }
    }
}

fn preflight_record(preflight: Preflight, figures: CheckFigures) -> (Preflight, serde_json::Value) {
    let record = PreflightRecord { preflight, figures };
    let value = serde_json::to_value(&record).unwrap_or_default();
    (record.preflight, value)
}

/// The insert's pre-flight, on a connection that holds the merchant's lock: the check must
/// describe every staged row; clean rows whose code reached production since are flagged
/// database duplicates now; clean rows must have a code. Returns the clean count and why an
/// insert cannot go ahead, if it cannot.
pub async fn validate_clean_codes_for_insert(conn: &mut PgConnection, merchant: Uuid) -> Result<Preflight, CheckError> {
    let mut errors = Vec::new();
    let staged_last = last_row(&mut *conn, merchant).await?;
    // The batch says whether a check saw exactly what is staged (an insert's own pre-flight
    // runs with its batch `inserting`).
    let batch = batch::latest(&mut *conn, merchant).await?.filter(|b| b.state.is_live());
    match (&batch, staged_last) {
        (None, _) | (_, None) => errors.push("Nothing is staged for this merchant.".to_owned()),
        (Some(b), _) if b.state == BatchState::Inserted => errors.push(format!(
            "This batch was inserted as job {}. Clear staging to start the next batch.",
            b.job_id.map(|j| j.to_string()).unwrap_or_default()
        )),
        (Some(b), _) if b.stale() => {
            errors.push("Rows were staged or removed after the last duplicate check: run the check again.".to_owned())
        }
        (Some(b), _) if b.state == BatchState::Open => errors.push("Run the duplicate check first.".to_owned()),
        _ => {}
    }

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // One read-only pass, in parallel (see `mark_duplicates`), counts the clean rows and finds
    // whether any row not yet flagged has its code in production now; only then are those
    // rows flagged (an UPDATE cannot run in parallel, and usually has nothing to do).
    for setting in
        ["SET LOCAL work_mem = '256MB'", "SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0"]
    {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    let count = || {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup),
                    count(c.code),
                    count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup AND btrim(s.code) = '')
             FROM codes_check_temp s
             LEFT JOIN (SELECT code FROM codes WHERE merchant_id = $1) c ON c.code = s.code
             WHERE s.merchant_id = $1 AND NOT s.existing_dup",
        )
        .bind(merchant)
    };
    let (mut clean_count, landed, mut blank_codes) = count().fetch_one(&mut *tx).await?;
    let mut new_database_duplicates = 0;
    if landed > 0 {
        new_database_duplicates = sqlx::query(
            "UPDATE codes_check_temp t SET existing_dup = true
             FROM codes c
             WHERE t.merchant_id = $1 AND NOT t.existing_dup AND c.merchant_id = $1 AND c.code = t.code",
        )
        .bind(merchant)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        (clean_count, _, blank_codes) = count().fetch_one(&mut *tx).await?;
    }
    tx.commit().await?;
    if blank_codes > 0 {
        errors.push(format!("{blank_codes} clean rows have no code."));
    }
    if clean_count == 0 && staged_last.is_some() {
        errors.push("No clean codes are left to insert.".to_owned());
    }
    errors.extend(numbers_production_cannot_hold(&mut *conn, merchant).await?);
    Ok(Preflight { clean_count, new_database_duplicates, errors })
}

/// What production's `points` and `price` columns cannot hold of the clean rows: an adopted
/// `codes` may type them narrower than staging's `numeric` (the original has `points integer`,
/// some have `price numeric(10,2)`), and the insert's cast would round 10.5 to 11 or fail on
/// overflow. Costs nothing where production's columns are `numeric` too.
async fn numbers_production_cannot_hold(conn: &mut PgConnection, merchant: Uuid) -> Result<Vec<String>, sqlx::Error> {
    let types: Vec<(String, String, Option<i32>, Option<i32>)> = sqlx::query_as(
        "SELECT a.attname::text, t.typname::text,
                CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN ((a.atttypmod - 4) >> 16) & 65535 END,
                CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN (a.atttypmod - 4) & 65535 END
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = 'codes'::regclass AND a.attname IN ('points', 'price') AND NOT a.attisdropped
         ORDER BY a.attname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut problems = Vec::new();
    for (column, type_name, precision, scale) in types {
        // A condition true for a value the column cannot hold exactly; the column name is one of
        // two literals above, the bounds are numbers from the catalogue.
        let cannot_hold = match (type_name.as_str(), precision, scale) {
            ("int2", ..) => format!("({column} <> trunc({column}) OR {column} NOT BETWEEN -32768 AND 32767)"),
            ("int4", ..) => {
                format!("({column} <> trunc({column}) OR {column} NOT BETWEEN -2147483648 AND 2147483647)")
            }
            ("int8", ..) => format!(
                "({column} <> trunc({column}) OR {column} NOT BETWEEN -9223372036854775808 AND 9223372036854775807)"
            ),
            ("numeric", Some(precision), Some(scale)) => {
                format!(
                    "(round({column}, {scale}) <> {column} OR abs({column}) >= 10::numeric ^ {})",
                    precision - scale
                )
            }
            _ => continue,
        };
        let sql = format!(
            "SELECT count(*) FROM codes_check_temp
             WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup AND {column} IS NOT NULL AND {cannot_hold}"
        );
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(merchant).fetch_one(&mut *conn).await?;
        if rows > 0 {
            let shown = match (precision, scale) {
                (Some(p), Some(s)) => format!("numeric({p},{s})"),
                _ => type_name.replace("int2", "smallint").replace("int4", "integer").replace("int8", "bigint"),
            };
            problems.push(format!(
                "{rows} clean rows have a {column} that production's {column} column ({shown}) cannot hold exactly; \
                 fix them in the files (the full report lists every row) and stage again."
            ));
        }
    }
    Ok(problems)
}
