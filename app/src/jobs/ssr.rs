//! SQL for import jobs.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{
    above_duplicate_threshold, JobDetail, JobFile, JobFilter, JobProgress, JobStatus, JobSummary, JobVerification,
    PreflightOutcome, DUPLICATE_THRESHOLD_PERCENT,
};
use crate::{
    batch::ssr::{self as batch, BatchError},
    components::format::format_count,
    duplicates::ssr::CheckError,
    error::AppError,
    operations::ssr::{self as operations, OperationError},
    staging::ssr::StagingError,
};

/// `SELECT` of [`JobSummary`]s followed by `$rest` (a literal: the statement stays static).
macro_rules! select_jobs {
    ($rest:literal) => {
        concat!(
            "SELECT j.id, j.merchant_id, m.name AS merchant_name,
                    CASE WHEN j.status IN ('pending', 'validating', 'processing') AND NOT ",
            // A job still in progress whose merchant lock nobody holds lost its server: it
            // reads as failed (its row is marked so at the next operation's start).
            crate::operations::ssr::merchant_locked!("j.merchant_id"),
            " THEN 'failed' ELSE j.status END AS status,
                    j.total_codes_to_insert, j.codes_inserted, j.created_at, j.created_by,
                    u.email AS created_by_email, j.completed_at, j.rolled_back_at,
                    CASE WHEN j.status IN ('pending', 'validating', 'processing') AND NOT ",
            crate::operations::ssr::merchant_locked!("j.merchant_id"),
            " THEN 'The server stopped during the insert; nothing was inserted. Run it again.'
                         ELSE j.error_message END AS error_message,",
            r#"
                      COALESCE(
                          ARRAY(
                              SELECT (f ->> 'name')
                                     || CASE WHEN f ->> 'restaged' = 'true' THEN ' (staged again)' ELSE '' END
                              FROM jsonb_array_elements(
                                  CASE WHEN jsonb_typeof(j.source_info -> 'files') = 'array'
                                       THEN j.source_info -> 'files' ELSE '[]'::jsonb END
                              ) WITH ORDINALITY AS t(f, ord)
                              WHERE f ->> 'name' IS NOT NULL
                              ORDER BY ord
                          ),
                          '{}'
                      ) AS files,
                      (SELECT sum((f ->> 'rows_staged')::bigint)
                       FROM jsonb_array_elements(
                           CASE WHEN jsonb_typeof(j.source_info -> 'files') = 'array'
                                THEN j.source_info -> 'files' ELSE '[]'::jsonb END
                       ) AS t(f)
                       WHERE jsonb_typeof(f -> 'rows_staged') = 'number')::bigint AS rows_staged
               FROM codes_import_jobs j
               LEFT JOIN merchants m ON m.id = j.merchant_id
               LEFT JOIN users u ON u.id = j.created_by "#,
            $rest
        )
    };
}

/// One page of jobs, newest first: of the merchants in `merchants` (every merchant if
/// `None`), filtered as `filter` says, older than its cursor.
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    merchants: Option<&[Uuid]>,
    filter: &JobFilter,
    limit: i64,
) -> Result<Vec<JobSummary>, sqlx::Error> {
    let (before_at, before_id) = filter.before.unzip();
    sqlx::query_as::<_, JobSummary>(select_jobs!(
        "WHERE ($1::uuid[] IS NULL OR j.merchant_id = ANY($1))
           AND ($2::text IS NULL OR j.status = $2)
           AND ($3::date IS NULL OR j.created_at >= $3::date)
           AND ($4::date IS NULL OR j.created_at < $4::date + 1)
           AND ($5::timestamptz IS NULL OR (j.created_at, j.id) < ($5, $6))
         ORDER BY j.created_at DESC, j.id DESC
         LIMIT $7"
    ))
    .bind(merchants)
    .bind(filter.status.map(JobStatus::as_str))
    .bind(filter.from)
    .bind(filter.to)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The parts of a job's record that [`JobSummary`] leaves out.
#[derive(sqlx::FromRow)]
struct AuditRow {
    validation_passed: Option<bool>,
    validation_errors: Option<serde_json::Value>,
    source_info: Option<serde_json::Value>,
}

/// The job's full record, with what its page says beside it: the running insert's phase and
/// clock, a completed job's claimed codes, a rolled-back job's deleted count.
pub async fn job_detail(pool: &PgPool, job: Uuid) -> Result<Option<JobDetail>, sqlx::Error> {
    let Some(summary) =
        sqlx::query_as::<_, JobSummary>(select_jobs!("WHERE j.id = $1")).bind(job).fetch_optional(pool).await?
    else {
        return Ok(None);
    };
    let audit = sqlx::query_as::<_, AuditRow>(
        "SELECT validation_passed, validation_errors, source_info FROM codes_import_jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(pool)
    .await?;
    // Each figure is read only in the state it describes: `codes` is not touched while the
    // insert runs (its rows are not visible yet, and a lock that holds the insert up would
    // hold the page up too).
    let progress = if summary.status.is_running() { progress(pool, &summary).await? } else { None };
    let claimed_codes = match summary.status {
        JobStatus::Completed => Some(claimed_codes(pool, job).await?),
        _ => None,
    };
    let codes_deleted = match summary.status {
        JobStatus::RolledBack => codes_deleted(pool, &summary).await?,
        _ => None,
    };
    Ok(Some(JobDetail {
        summary,
        preflight: preflight_outcome(audit.validation_passed, audit.validation_errors),
        files: job_files(audit.source_info),
        progress,
        claimed_codes,
        codes_deleted,
    }))
}

/// What the job's pre-flight recorded: this app's record (`errors`, `clean_count`,
/// `new_database_duplicates`), or the original system's list of failed checks
/// (`check`, `rows`, `message`).
fn preflight_outcome(passed: Option<bool>, record: Option<serde_json::Value>) -> PreflightOutcome {
    let number = |value: &serde_json::Value, key: &str| value.get(key).and_then(serde_json::Value::as_i64);
    let mut outcome = PreflightOutcome { passed, ..PreflightOutcome::default() };
    match record {
        Some(serde_json::Value::Array(checks)) => {
            outcome.problems = checks
                .iter()
                .filter_map(|check| {
                    let message = check.get("message").and_then(serde_json::Value::as_str)?;
                    Some(match number(check, "rows") {
                        Some(rows) => format!("{message} ({} rows).", format_count(rows)),
                        None => format!("{message}."),
                    })
                })
                .collect();
        }
        Some(record) => {
            outcome.clean_count = number(&record, "clean_count");
            outcome.new_database_duplicates = number(&record, "new_database_duplicates");
            outcome.problems = record
                .get("errors")
                .and_then(serde_json::Value::as_array)
                .map(|errors| errors.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
        }
        None => {}
    }
    outcome
}

/// The job's files as its `source_info.files` recorded them (anything else there is left out).
fn job_files(source_info: Option<serde_json::Value>) -> Vec<JobFile> {
    let files = source_info.as_ref().and_then(|info| info.get("files")).and_then(serde_json::Value::as_array);
    let number = |value: &serde_json::Value, key: &str| value.get(key).and_then(serde_json::Value::as_i64);
    files
        .into_iter()
        .flatten()
        .filter_map(|file| {
            let report = file.get("report").cloned().unwrap_or_default();
            let skipped = ["rows_skipped_blank_code", "rows_skipped_blank_line"]
                .iter()
                .map(|key| number(&report, key))
                .sum::<Option<i64>>();
            Some(JobFile {
                name: file.get("name")?.as_str()?.to_owned(),
                size: number(file, "size"),
                checksum: file.get("checksum").and_then(serde_json::Value::as_str).map(str::to_owned),
                rows_staged: number(file, "rows_staged"),
                rows_skipped: skipped,
                rows_rejected: number(&report, "rows_rejected"),
                restaged: file.get("restaged").and_then(serde_json::Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

/// The running job's insert: the merchant's running operation of kind `insert`. While a job
/// runs its merchant's lock is held (else `select_jobs!` reads it as failed), and the insert
/// took that lock just before it created the job, so the operation started at or before the
/// job was created: it is the latest such one.
async fn progress(pool: &PgPool, job: &JobSummary) -> Result<Option<JobProgress>, sqlx::Error> {
    sqlx::query_as::<_, JobProgress>(
        "SELECT phase, rows_done, started_at, clock_timestamp() AS now FROM merchant_operations
         WHERE merchant_id = $1 AND kind = 'insert' AND status = 'running' AND started_at <= $2
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(job.merchant_id)
    .bind(job.created_at)
    .fetch_optional(pool)
    .await
}

/// How many of the job's codes customers have claimed: a rollback would be refused. (On the
/// index on `import_job_id`, which the migrations give an adopted `codes` too.)
async fn claimed_codes(db: impl PgExecutor<'_>, job: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1 AND claimed").bind(job).fetch_one(db).await
}

/// What the job's rollback deleted, as its operation recorded it.
async fn codes_deleted(pool: &PgPool, job: &JobSummary) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT (result ->> 'codes_deleted')::bigint FROM merchant_operations
         WHERE merchant_id = $1 AND kind = 'rollback' AND status = 'completed' AND result ->> 'job' = $2::text
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(job.merchant_id)
    .bind(job.id)
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}

/// The merchant a job belongs to; `NoSuchJob` for an unknown job.
pub async fn merchant_of(pool: &PgPool, job: Uuid) -> Result<Uuid, JobError> {
    sqlx::query_scalar("SELECT merchant_id FROM codes_import_jobs WHERE id = $1")
        .bind(job)
        .fetch_optional(pool)
        .await?
        .ok_or(JobError::NoSuchJob)
}

/// What the user must type to confirm an insert, and a rollback.
pub const INSERT_CONFIRMATION: &str = "YES";
pub const ROLLBACK_CONFIRMATION: &str = "DELETE";

/// What a job that lost its database says.
const INSERT_LOST: &str = "The insert lost its database connection, so nothing was inserted. Run it again.";

/// Why an insert, a rollback or a clear did not happen, with what is known of it; an
/// [`AppError`] at the boundary — the server function's answer, and the words the job's and the
/// operation's records keep (never a database's internal text: a fault of the database is
/// logged once, in full, where it becomes an `AppError`).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Type {0} to confirm the {1}.")]
    Unconfirmed(&'static str, &'static str),
    #[error("There is no such job.")]
    NoSuchJob,
    /// Another operation runs for the merchant.
    #[error(transparent)]
    Busy(#[from] OperationError),
    /// An upload for the merchant is unfinished.
    #[error(transparent)]
    Upload(#[from] StagingError),
    /// The pre-flight could not run.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// The merchant's batch is not checked, or was inserted already.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The pre-flight found rows the insert must not take; its errors are in the job's record.
    #[error("The pre-flight failed: {}", .0.join(" "))]
    Preflight(Vec<String>),
    #[error(
        "The insert added {inserted} codes where the pre-flight counted {expected}, so nothing was inserted. \
         Run the duplicate check and the insert again."
    )]
    Miscounted { inserted: i64, expected: i64 },
    /// A code reached production between the pre-flight and the insert (the unique index's
    /// words for it).
    #[error(
        "A code reached production after the pre-flight ({0}), so nothing was inserted. \
         Run the insert again: its pre-flight will flag it."
    )]
    Arrived(String),
    /// A constraint or trigger of the adopted database refused a row: its own message, which is
    /// written for people (never SQL text).
    #[error("The insert failed and nothing was inserted: {0}")]
    Refused(String),
    /// The insert's connection was lost, or the database shut down under it (its transaction
    /// with it).
    #[error("{INSERT_LOST}")]
    Lost(#[source] sqlx::Error),
    /// Duplicates are above the threshold and the user did not confirm the insert anyway.
    #[error(
        "{} of the {} staged rows are duplicates, above the {DUPLICATE_THRESHOLD_PERCENT} % threshold: \
         confirm that you mean to insert the remaining clean codes.",
        format_count(*.duplicates), format_count(*.total)
    )]
    TooManyDuplicates { duplicates: i64, total: i64 },
    #[error("This job was rolled back already.")]
    RolledBack,
    #[error("Only a completed job can be rolled back; this one is {0}.")]
    NotCompleted(JobStatus),
    #[error("{0} of this job's codes are claimed by customers, so it cannot be rolled back. Nothing was deleted.")]
    Claimed(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl JobError {
    /// What the user is told, and the job's and the operation's records keep; logs nothing.
    fn shown(&self) -> AppError {
        match self {
            JobError::Database(error) | JobError::Upload(StagingError::Database(error)) => AppError::of_database(error),
            JobError::Busy(error) => error.shown(),
            JobError::Check(error) => error.shown(),
            JobError::Batch(error) => error.shown(),
            JobError::Lost(_) => AppError::Unavailable(self.to_string()),
            JobError::NoSuchJob => AppError::NotFound(self.to_string()),
            JobError::Unconfirmed(..)
            | JobError::TooManyDuplicates { .. }
            | JobError::Preflight(_)
            | JobError::Refused(_)
            | JobError::NotCompleted(_) => AppError::Invalid(self.to_string()),
            // An unfinished upload (the only answer besides the database's that
            // `ensure_no_upload` gives), a count that moved, a claimed code.
            _ => AppError::Conflict(self.to_string()),
        }
    }
}

impl From<JobError> for AppError {
    /// The boundary: a fault of the server is logged here, once.
    fn from(error: JobError) -> Self {
        match error {
            JobError::Database(error) => AppError::from(error),
            JobError::Busy(error) => AppError::from(error),
            JobError::Upload(error) => AppError::from(error),
            JobError::Check(error) => AppError::from(error),
            JobError::Batch(error) => AppError::from(error),
            JobError::Lost(error) => {
                tracing::warn!(%error, "the insert lost its database connection");
                AppError::Unavailable(JobError::Lost(error).to_string())
            }
            error => error.shown(),
        }
    }
}

/// Starts the insert of the merchant's clean staged rows in the background, as
/// [`start_insert_confirmed`] does for a batch with duplicates below the threshold.
pub async fn start_insert(pool: &PgPool, merchant: Uuid, user: Uuid, confirmation: &str) -> Result<Uuid, JobError> {
    start_insert_confirmed(pool, merchant, user, confirmation, false).await
}

/// Starts the insert of the merchant's clean staged rows in the background: a job row now,
/// then the pre-flight and one transaction that inserts the rows, checks the count and
/// completes the job. Returns the job's id. Refused (`TooManyDuplicates`) when the
/// duplicates exceed [`DUPLICATE_THRESHOLD_PERCENT`] of the staged rows, by the figures the
/// user saw or by the insert's own pre-flight, unless `duplicates_confirmed`.
pub async fn start_insert_confirmed(
    pool: &PgPool,
    merchant: Uuid,
    user: Uuid,
    confirmation: &str,
    duplicates_confirmed: bool,
) -> Result<Uuid, JobError> {
    if confirmation.trim() != INSERT_CONFIRMATION {
        return Err(JobError::Unconfirmed(INSERT_CONFIRMATION, "insert"));
    }
    // The staged rows as the figures count them; unknown without current figures (the batch
    // is then refused below, as not checked).
    let figures = crate::duplicates::ssr::current_figures(pool, merchant).await?.map(|f| f.overall);
    let guard = DuplicateGuard { staged: figures.as_ref().map(|f| f.total_rows), confirmed: duplicates_confirmed };
    if let Some(figures) = &figures {
        guard.check(figures.clean_count)?;
    }
    crate::staging::ssr::ensure_no_upload(pool, merchant, "inserting").await?;
    let mut running = operations::begin(pool, merchant, "insert", Some(user)).await?;
    let job = Uuid::new_v4();
    // The batch must be checked; from here it is this job's.
    if let Err(refused) = batch::inserting(&mut running.conn, merchant, job).await {
        running.finish(Err(refused.shown())).await;
        return Err(refused.into());
    }
    let expected = expected_count(pool, merchant).await;
    let created = async {
        sqlx::query(
            "INSERT INTO codes_import_jobs (id, merchant_id, status, created_by, source_info, total_codes_to_insert)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job)
        .bind(merchant)
        .bind(JobStatus::Validating.as_str())
        .bind(user)
        .bind(source_info(pool, merchant, job).await?)
        .bind(expected)
        .execute(pool)
        .await
    }
    .await;
    if let Err(error) = created {
        let _ = batch::insert_failed(pool, job).await;
        running.finish(Err(AppError::of_database(&error))).await;
        return Err(JobError::Database(error));
    }
    let background = pool.clone();
    let span = running.span();
    let insert = async move {
        let mut running = running;
        // The boundary of a background insert: its error is logged here, in full and once,
        // and recorded as the user is told it.
        let outcome = run_insert(&background, &mut running, job, guard).await.map_err(|error| {
            tracing::warn!(%job, %merchant, %error, "the insert failed");
            match error.shown() {
                // Its server shutting down stopped it (its connection was ended).
                _ if operations::shutting_down() => AppError::Unavailable(operations::SHUT_DOWN_INSERT.to_owned()),
                // Whichever statement lost the database, the job's record says what it means.
                AppError::Unavailable(_) => AppError::Unavailable(INSERT_LOST.to_owned()),
                shown => shown,
            }
        });
        if let Err(error) = &outcome {
            fail_job(&background, job, &error.to_string()).await;
        }
        running
            .finish(outcome.map(|done| {
                serde_json::json!({
                    "job": job,
                    "codes_inserted": done.inserted,
                    "preflight_seconds": done.preflight_seconds,
                    "insert_seconds": done.insert_seconds,
                })
            }))
            .await;
    };
    tokio::spawn(tracing::Instrument::instrument(insert, span));
    Ok(job)
}

/// The count the insert expects as it starts: the clean count of the merchant's latest figures
/// (the check's, or a later pre-flight's: the "Ready to insert N clean codes" the user just
/// confirmed), if they still describe what is staged. It is known already, so the job's page
/// shows it from the first moment without a count over staging (millions of rows) or over
/// `codes` on the request's path; the insert's pre-flight then records what it counts. Figures
/// that cannot be read leave it to the pre-flight (their error was logged as it became an
/// `AppError`).
async fn expected_count(pool: &PgPool, merchant: Uuid) -> Option<i64> {
    let state = crate::duplicates::ssr::review_state(pool, merchant).await.ok()?;
    state.figures.filter(|_| state.stale.is_none()).map(|figures| figures.overall.clean_count)
}

/// The files whose rows the job inserts: those of its batch's uploads, with their sizes,
/// checksums and validation reports, and the batch.
async fn source_info(pool: &PgPool, merchant: Uuid, job: Uuid) -> Result<serde_json::Value, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('batch', min(b.id::text), 'files', COALESCE(jsonb_agg(jsonb_build_object(
                    'upload', u.id, 'name', f.name, 'size', f.size, 'checksum', f.checksum,
                    'rows_staged', f.rows_received, 'restaged', f.restaged, 'report', f.report)
                ORDER BY u.created_at, f.file_index), '[]'::jsonb))
         FROM staging_batches b JOIN uploads u ON u.batch_id = b.id JOIN upload_files f ON f.upload_id = u.id
         WHERE b.merchant_id = $1 AND b.job_id = $2 AND f.rows_received > 0",
    )
    .bind(merchant)
    .bind(job)
    .fetch_one(pool)
    .await
}

/// Marks the job failed with `message`, and its batch checked again (or open, if the
/// pre-flight found codes that reached production since the check). If the database does not
/// answer, the next operation's start does both.
async fn fail_job(pool: &PgPool, job: Uuid, message: &str) {
    // A database that lost the insert may still be coming back (a restart): ask again for a
    // few seconds, so that the job's row says its own reason. (Until it does, its page reads
    // it as failed anyway: nobody holds its merchant's lock.)
    for attempt in 1..=FAIL_JOB_TRIES {
        let failed = sqlx::query(
            "UPDATE codes_import_jobs SET status = 'failed', error_message = $2, completed_at = NULL
             WHERE id = $1 AND status IN ('pending', 'validating', 'processing')",
        )
        .bind(job)
        .bind(message)
        .execute(pool)
        .await;
        match failed.and(batch::insert_failed(pool, job).await) {
            Ok(_) => return,
            Err(error)
                if attempt < FAIL_JOB_TRIES && matches!(AppError::of_database(&error), AppError::Unavailable(_)) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(error) => {
                tracing::error!(%job, %error, "could not mark the job failed");
                return;
            }
        }
    }
}

/// How often [`fail_job`] asks, half a second apart.
const FAIL_JOB_TRIES: u32 = 20;

/// The duplicate threshold as an insert applies it: to the staged rows, unless the user
/// confirmed.
#[derive(Debug, Clone, Copy)]
struct DuplicateGuard {
    staged: Option<i64>,
    confirmed: bool,
}

impl DuplicateGuard {
    /// `TooManyDuplicates` if `clean` of the staged rows leave duplicates above the threshold.
    fn check(self, clean: i64) -> Result<(), JobError> {
        match self.staged {
            Some(total) if !self.confirmed && above_duplicate_threshold(total, clean) => {
                Err(JobError::TooManyDuplicates { duplicates: total - clean, total })
            }
            _ => Ok(()),
        }
    }
}

/// What a completed insert did, and how long its two parts took.
struct Inserted {
    inserted: i64,
    preflight_seconds: f64,
    insert_seconds: f64,
}

/// The insert's work, on the connection that holds the merchant's lock. Any error leaves no
/// row of the job in `codes`: everything is in one transaction.
async fn run_insert(
    pool: &PgPool,
    running: &mut operations::Running,
    job: Uuid,
    guard: DuplicateGuard,
) -> Result<Inserted, JobError> {
    let merchant = running.merchant;
    let started = std::time::Instant::now();
    running.phase(pool, "Pre-flight: re-checking database duplicates and fields").await;
    let preflight = super::preflight::validate_clean_codes_for_insert(&mut running.conn, merchant).await?;
    let report = serde_json::json!({
        "errors": preflight.errors,
        "clean_count": preflight.clean_count,
        "new_database_duplicates": preflight.new_database_duplicates,
    });
    if !preflight.ready() {
        sqlx::query("UPDATE codes_import_jobs SET validation_passed = false, validation_errors = $2 WHERE id = $1")
            .bind(job)
            .bind(&report)
            .execute(pool)
            .await?;
        return Err(JobError::Preflight(preflight.errors));
    }
    // Codes that reached production since the check may have taken the batch over the threshold.
    guard.check(preflight.clean_count)?;
    let expected = preflight.clean_count;
    sqlx::query(
        "UPDATE codes_import_jobs
         SET status = 'processing', validation_passed = true, validation_errors = $2, total_codes_to_insert = $3
         WHERE id = $1",
    )
    .bind(job)
    .bind(&report)
    .bind(expected)
    .execute(pool)
    .await?;

    let preflight_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    running.phase(pool, &format!("Sorting {} codes in the order of production's index", format_count(expected))).await;
    let progress = running.progress();
    let mut tx = sqlx::Connection::begin(&mut running.conn).await?;
    // The final guard is the unique constraint on (code, merchant_id): a code that reached
    // production since the pre-flight fails the statement, and the whole transaction with it.
    // (ON CONFLICT DO NOTHING would guard too, but its speculative insertion made the insert
    // 1.7x slower in `server bench`.)
    //
    // The rows go in in the unique index's key order. Codes are random, so in any other order
    // each row lands on a random leaf of an index far larger than shared_buffers: the backend
    // spent most of its time writing out dirty leaves and reading others back
    // (`IO: DataFileWrite`/`DataFileRead`). In key order each leaf is visited once, while it
    // is in memory. An `INSERT` runs in one process, sort included; the sort is done first, in
    // parallel, into a table the insert reads back in order (see `sort_clean_rows`).
    let order = code_order(&mut *tx).await?;
    sort_clean_rows(&mut tx, merchant, order).await?;
    let inserted = insert_sorted_rows(&mut tx, progress, pool, job, expected).await?;
    if inserted != expected {
        tx.rollback().await?;
        return Err(JobError::Miscounted { inserted, expected });
    }
    sqlx::query(
        "UPDATE codes_import_jobs SET status = 'completed', codes_inserted = $2, completed_at = clock_timestamp() WHERE id = $1",
    )
    .bind(job)
    .bind(inserted)
    .execute(&mut *tx)
    .await?;
    batch::inserted(&mut *tx, job).await?;
    tx.commit().await?;
    tracing::info!(%job, %merchant, inserted, "import job completed");
    Ok(Inserted { inserted, preflight_seconds, insert_seconds: started.elapsed().as_secs_f64() })
}

/// Into how many statements the insert is cut: after each, the job's page and the metrics say
/// how far it has come. (The transaction is one: nothing is visible before it commits.)
const INSERT_SLICES: i64 = 20;

/// Inserts the rows of `codes_insert_sorted` into `codes` in slices of the table's pages, in
/// the order they were written (a TID range scan reads one slice), recording the rows so far
/// after each; returns how many rows went in.
async fn insert_sorted_rows(
    tx: &mut sqlx::PgConnection,
    progress: operations::Progress,
    pool: &PgPool,
    job: Uuid,
    expected: i64,
) -> Result<i64, JobError> {
    let started = std::time::Instant::now();
    let pages: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('pg_temp.codes_insert_sorted') / current_setting('block_size')::bigint",
    )
    .fetch_one(&mut *tx)
    .await?;
    let step = (pages + INSERT_SLICES - 1) / INSERT_SLICES;
    let mut inserted = 0;
    for first in (0..pages).step_by(step.max(1) as usize) {
        inserted += sqlx::query(
            "INSERT INTO codes (merchant_id, code, serial, sku, points, sku_name, batch_code, price, source, import_job_id)
             SELECT merchant_id, code, serial, sku, points, sku_name, batch_code, price, 'code-import', $1
             FROM pg_temp.codes_insert_sorted
             WHERE ctid >= format('(%s,0)', $2::bigint)::tid AND ctid < format('(%s,0)', $3::bigint)::tid",
        )
        .bind(job)
        .bind(first)
        .bind(first + step)
        .execute(&mut *tx)
        .await
        .map_err(insert_failed)?
        .rows_affected() as i64;
        let words = format!("Inserting: {} of {} codes written", format_count(inserted), format_count(expected));
        progress.report(pool, &words, inserted, started).await;
    }
    Ok(inserted)
}

/// Copies the merchant's clean staged rows, sorted by `code{order}`, into the temporary table
/// `codes_insert_sorted`, which the transaction drops at its end. Fails as the statement does.
///
/// `CREATE TABLE … AS` may sort in parallel (an `INSERT … SELECT` may not), and a sequential
/// scan of a table written once returns its rows in the order they were written.
async fn sort_clean_rows(conn: &mut sqlx::PgConnection, merchant: Uuid, order: &str) -> Result<(), sqlx::Error> {
    crate::duplicates::ssr::for_big_reads(&mut *conn).await?;
    // A utility statement takes no bind parameters; the merchant is a UUID.
    let statement = format!(
        "CREATE TEMPORARY TABLE codes_insert_sorted ON COMMIT DROP AS
         SELECT merchant_id, code, serial, sku, points, sku_name, batch_code, price
         FROM codes_check_temp
         WHERE merchant_id = '{merchant}' AND NOT internal_dup AND NOT existing_dup
         ORDER BY code{order}"
    );
    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await?;
    Ok(())
}

/// How to sort codes in the order of the unique index on `codes (code, …)`: ` COLLATE "C"`
/// (bytes, whose sort compares abbreviated keys: twice as fast) when the index's collation
/// orders text by code point as bytes do, else nothing (the column's collation, which the
/// index uses unless it names another; a sort in some other order would still be correct,
/// only slower).
async fn code_order(conn: &mut sqlx::PgConnection) -> Result<&'static str, sqlx::Error> {
    let by_code_point: Option<bool> = sqlx::query_scalar(
        "SELECT bool_or(coalesce(nullif(c.collcollate, ''), d.datcollate) IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8')
                        AND c.collprovider IN ('c', 'd'))
         FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         JOIN pg_collation c ON c.oid = i.indcollation[0]
         JOIN pg_database d ON d.datname = current_database()
         WHERE i.indrelid = 'codes'::regclass AND i.indisunique AND a.attname = 'code'
           AND (d.datlocprovider = 'c' OR c.collprovider = 'c')",
    )
    .fetch_one(conn)
    .await?;
    Ok(if by_code_point == Some(true) { " COLLATE \"C\"" } else { "" })
}

/// A failed `INSERT` as the job records it: the database's own words for a constraint or a
/// trigger that refused a row, never SQL text; any other failure as it is.
fn insert_failed(error: sqlx::Error) -> JobError {
    if matches!(AppError::of_database(&error), AppError::Unavailable(_)) {
        return JobError::Lost(error);
    }
    let Some(db) = error.as_database_error() else { return JobError::Database(error) };
    let words = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
    match db.code().as_deref() {
        Some("23505") => JobError::Arrived(
            words
                .and_then(|pg| pg.detail())
                .map_or("a duplicate key", |detail| detail.trim_end_matches('.'))
                .to_owned(),
        ),
        // A value the column cannot hold (22), an integrity constraint (23), a trigger's RAISE
        // (P0001): the database speaks of the row.
        Some(code) if code.starts_with("22") || code.starts_with("23") || code == "P0001" => {
            JobError::Refused(db.message().to_owned())
        }
        _ => JobError::Database(error),
    }
}

/// A job's state as verify and rollback read it.
#[derive(sqlx::FromRow)]
struct JobState {
    #[sqlx(try_from = "String")]
    status: JobStatus,
    codes_inserted: Option<i64>,
}

/// Recounts a job's codes in production.
pub async fn verify_job(pool: &PgPool, job: Uuid) -> Result<JobVerification, JobError> {
    let state = sqlx::query_as::<_, JobState>("SELECT status, codes_inserted FROM codes_import_jobs WHERE id = $1")
        .bind(job)
        .fetch_optional(pool)
        .await?
        .ok_or(JobError::NoSuchJob)?;
    let codes_found: i64 =
        sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1").bind(job).fetch_one(pool).await?;
    Ok(JobVerification { status: state.status, codes_inserted: state.codes_inserted, codes_found })
}

/// Rolls a completed job back: deletes its codes and marks it `rolled_back`, in one
/// transaction. Refused for a job in any other state, and for one with claimed codes. Returns
/// how many codes it deleted.
pub async fn rollback_job(pool: &PgPool, job: Uuid, user: Uuid, confirmation: &str) -> Result<i64, JobError> {
    if confirmation.trim() != ROLLBACK_CONFIRMATION {
        return Err(JobError::Unconfirmed(ROLLBACK_CONFIRMATION, "rollback"));
    }
    let merchant = merchant_of(pool, job).await?;
    let mut running = operations::begin(pool, merchant, "rollback", Some(user)).await?;
    running.phase(pool, "Deleting the job's codes").await;
    let outcome = rollback_in(&mut running.conn, job).await;
    running.finish(recorded(&outcome, |deleted| serde_json::json!({ "job": job, "codes_deleted": deleted }))).await;
    outcome
}

/// What an operation's record keeps of `outcome`: its result, or its error as the caller will
/// be told it.
fn recorded<T>(
    outcome: &Result<T, JobError>,
    result: impl FnOnce(&T) -> serde_json::Value,
) -> Result<serde_json::Value, AppError> {
    outcome.as_ref().map(result).map_err(JobError::shown)
}

async fn rollback_in(conn: &mut sqlx::PgConnection, job: Uuid) -> Result<i64, JobError> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let JobState { status, codes_inserted: inserted } =
        sqlx::query_as("SELECT status, codes_inserted FROM codes_import_jobs WHERE id = $1 FOR UPDATE")
            .bind(job)
            .fetch_one(&mut *tx)
            .await?;
    match status {
        JobStatus::Completed => {}
        JobStatus::RolledBack => return Err(JobError::RolledBack),
        other => return Err(JobError::NotCompleted(other)),
    }
    // Claimed codes are never deleted: the delete skips them (a claim that commits while the
    // delete waits for its row is seen, as PostgreSQL re-checks the row), and a claim that
    // comes later waits for the delete's row lock and then finds no row. If fewer codes went
    // than the job inserted, the ones left are counted: claimed ones refuse the rollback.
    // (RETURNING the claimed flag of every deleted row made the delete 1.5-1.8x slower.)
    let deleted = sqlx::query("DELETE FROM codes WHERE import_job_id = $1 AND NOT claimed")
        .bind(job)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
    if Some(deleted) != inserted {
        let claimed = claimed_codes(&mut *tx, job).await?;
        if claimed > 0 {
            tx.rollback().await?;
            return Err(JobError::Claimed(claimed));
        }
    }
    sqlx::query(
        "UPDATE codes_import_jobs SET status = 'rolled_back', rolled_back_at = clock_timestamp() WHERE id = $1",
    )
    .bind(job)
    .execute(&mut *tx)
    .await?;
    batch::rolled_back(&mut *tx, job).await?;
    tx.commit().await?;
    tracing::info!(%job, deleted, "import job rolled back");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_job_whose_server_died_reads_as_the_reaper_marks_it() {
        assert!(select_jobs!("").contains(super::operations::INTERRUPTED_INSERT));
    }
}
