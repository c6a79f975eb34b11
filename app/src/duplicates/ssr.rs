//! Set-based SQL for the duplicate check, its figures, the preview and the pre-flight.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    BlockStats, CheckFigures, CodeSearch, DuplicateStats, PreviewPage, PreviewRow, ReviewState, ReviewView, RowFilter,
    BLOCK_ROWS,
};
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
/// 4. those rows are rewritten by `ctid`; an internal duplicate keeps the row number of its
///    code's first occurrence in `first_row` (the review points to it).
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
    for_big_reads(&mut tx).await?;
    let hashes = format!("check_repeated_hashes_{}", merchant.simple());
    let repeats = format!("check_repeated_codes_{}", merchant.simple());
    // Sent as plain SQL: a CREATE TABLE AS takes no parameters, and the names differ per
    // merchant (no point preparing them). Only a `Uuid` is spliced in.
    let repeated = vec![
        // Staging's statistics, as the rows staged now make them: without them the planner
        // sizes the hash tables below for a table of unknown content (autovacuum, when it is on
        // at all, analyses a table a minute or more after a bulk load, and may run beside the
        // check). ANALYZE reads a sample (30,000 rows) whatever the batch's size.
        "ANALYZE codes_check_temp".to_owned(),
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
             SELECT tid, internal, existing, first
             FROM (SELECT s.ctid AS tid, s.internal_dup, s.existing_dup, s.first_row,
                          coalesce(s.row_number > r.first_row, false) AS internal,
                          c.code IS NOT NULL AS existing,
                          CASE WHEN s.row_number > r.first_row THEN r.first_row END AS first
                   FROM codes_check_temp s
                   LEFT JOIN (SELECT code FROM codes WHERE merchant_id = '{merchant}') c ON c.code = s.code
                   LEFT JOIN {repeats} r ON r.code = s.code
                   WHERE s.merchant_id = '{merchant}') f
             WHERE internal_dup <> internal OR existing_dup <> existing OR first_row IS DISTINCT FROM first
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
        "UPDATE codes_check_temp t SET internal_dup = f.internal, existing_dup = f.existing, first_row = f.first
         FROM check_changes f
         WHERE t.ctid = f.tid AND t.merchant_id = $1",
    )
    .bind(merchant)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed.rows_affected())
}

/// Sets the current transaction up for reads of the whole batch: its sorts and hash tables
/// stay in memory (256 MB for each process: the leader and its two parallel workers), and the
/// planner's parallel costs are zero — with the defaults it chose no workers for the check's
/// `CREATE TABLE … AS`, which then took 1.5× as long. The check, the pre-flight and the
/// insert's sort share it.
pub(crate) async fn for_big_reads(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("SET LOCAL work_mem = '256MB'; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0")
        .execute(conn)
        .await
        .map(|_| ())
}

/// The figures over the merchant's staged rows as they are flagged now.
pub async fn stats(conn: &mut PgConnection, merchant: Uuid) -> Result<DuplicateStats, sqlx::Error> {
    Ok(figures(conn, merchant).await?.overall)
}

/// The figures per source file (in row order) and overall, as the rows are flagged now, with
/// the same per block of row numbers (one pass: a block is a few hundred more groups).
pub async fn figures(conn: &mut PgConnection, merchant: Uuid) -> Result<CheckFigures, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Counted {
        upload_id: Option<Uuid>,
        source_file: Option<String>,
        block: i64,
        total_rows: i64,
        internal_duplicates: i64,
        database_duplicates: i64,
        both: i64,
        clean_count: i64,
        last_row: i64,
    }
    // The planner takes every row number for a group of its own (15 M groups where there are a
    // few hundred) and sorted the rows to group them, spilling 1 GB to disk: 10.2 s at full scale
    // where a hash table of the groups takes 3.6 s.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET LOCAL enable_sort = off").execute(&mut *tx).await?;
    let rows = sqlx::query_as::<_, Counted>(
        "SELECT upload_id, source_file, row_number / $2 AS block,
                count(*) AS total_rows,
                count(*) FILTER (WHERE internal_dup) AS internal_duplicates,
                count(*) FILTER (WHERE existing_dup) AS database_duplicates,
                count(*) FILTER (WHERE internal_dup AND existing_dup) AS both,
                count(*) FILTER (WHERE NOT internal_dup AND NOT existing_dup) AS clean_count,
                max(row_number) AS last_row
         FROM codes_check_temp WHERE merchant_id = $1
         GROUP BY upload_id, source_file, block
         ORDER BY min(row_number)",
    )
    .bind(merchant)
    .bind(BLOCK_ROWS)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let last_row = rows.iter().map(|r| r.last_row).max();
    let mut files: Vec<(Option<Uuid>, Option<String>)> = Vec::new();
    let mut blocks = Vec::with_capacity(rows.len());
    for row in rows {
        let key = (row.upload_id, row.source_file);
        let file = match files.iter().position(|known| *known == key) {
            Some(index) => index as i64,
            None => {
                files.push(key);
                files.len() as i64 - 1
            }
        };
        let Counted { block, total_rows, internal_duplicates, database_duplicates, both, clean_count, .. } = row;
        let stats = DuplicateStats { total_rows, internal_duplicates, database_duplicates, both, clean_count };
        blocks.push(BlockStats { block, file, stats });
    }
    let names = files.into_iter().map(|(_, name)| name.unwrap_or_else(|| "(no file)".into())).collect();
    Ok(CheckFigures::from_blocks(names, blocks, last_row))
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
            | CheckError::Upload(crate::staging::ssr::StagingError::Database(error)) => AppError::of_database(error),
            CheckError::Busy(error) => error.shown(),
            CheckError::Batch(error) => error.shown(),
            CheckError::NothingStaged => AppError::Invalid(self.to_string()),
            CheckError::Upload(_) => AppError::Conflict(self.to_string()),
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
    // The latest check is read before the batch: a check records its figures on the batch
    // before it ends, so a check read as ended is never read beside a batch without its
    // figures (read the other way round, a check ending between the two reads showed
    // "Checked at" with no figures, and the page stopped polling).
    let latest_check = operations::latest(pool, merchant, "check").await?;
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
    let check = latest_check.filter(|op| op.started_at >= current.created_at);
    let (figures, checked_at) = match current.figures_operation {
        Some(operation) => figures_of(pool, operation).await?.unzip(),
        None => (None, None),
    };
    let stale = figures.as_ref().filter(|_| current.stale()).map(|figures| stale_reason(current, figures));
    let running = operations::running(pool, merchant).await?.filter(|op| op.kind != "check");
    let figures = figures.map(CheckFigures::without_blocks);
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

/// The figures that describe exactly what the merchant has staged now: none before a check, or
/// when rows were staged or removed after it.
pub async fn current_figures(pool: &PgPool, merchant: Uuid) -> Result<Option<CheckFigures>, sqlx::Error> {
    let batch = batch::latest(pool, merchant).await?.filter(|b| b.state.is_live() && !b.stale());
    let Some(operation) = batch.and_then(|b| b.figures_operation) else { return Ok(None) };
    // Figures recorded before they had blocks cannot place a page: as if there were none.
    Ok(figures_of(pool, operation)
        .await?
        .map(|(figures, _)| figures)
        .filter(|figures| !figures.blocks.is_empty() || figures.overall.total_rows == 0))
}

/// The preview's filter over `codes_check_temp`, its parameters named: duplicates only, the
/// exact flags (internal, existing), the source file.
macro_rules! row_filter {
    ($duplicates:literal, $internal:literal, $existing:literal, $file:literal) => {
        concat!(
            "(NOT ",
            $duplicates,
            " OR internal_dup OR existing_dup)
             AND (",
            $internal,
            "::boolean IS NULL OR (internal_dup = ",
            $internal,
            " AND existing_dup = ",
            $existing,
            "))
             AND (",
            $file,
            "::text IS NULL OR source_file = ",
            $file,
            ")"
        )
    };
}

/// A search by code `$code`: exactly, or as a prefix when `$prefix`.
macro_rules! code_search {
    ($code:literal, $prefix:literal) => {
        concat!("CASE WHEN ", $prefix, " THEN starts_with(code, ", $code, ") ELSE code = ", $code, " END")
    };
}

/// `SELECT $what` over the rows of a view that a search finds: `$1` the merchant, `$2`–`$5` the
/// view's filter, `$6` and `$7` the search.
macro_rules! found {
    ($what:literal) => {
        concat!(
            "SELECT ",
            $what,
            " FROM codes_check_temp WHERE merchant_id = $1 AND ",
            row_filter!("$2", "$3", "$4", "$5"),
            " AND ",
            code_search!("$6", "$7")
        )
    };
}

/// A page of the preview: the rows on one side of the cursor `$2` (`$cursor`, in `$order`),
/// between rows `$3` and `$4`, filtered, with the first occurrence of an internal duplicate and
/// the production row of a database duplicate (each a probe of a primary key or unique index).
macro_rules! preview_page {
    ($cursor:literal, $order:literal) => {
        concat!(
            "SELECT s.row_number, s.code, s.serial, s.sku, s.points::text AS points, s.sku_name, s.batch_code,
                    s.price::text AS price, s.internal_dup, s.existing_dup, s.source_file, s.source_line,
                    s.first_row, f.source_file AS first_file, f.source_line AS first_line,
                    c.created_at AS production_created_at, c.source AS production_source,
                    c.import_job_id AS production_job, j.id IS NOT NULL AS production_job_known
             FROM (SELECT merchant_id, row_number, code, serial, sku, points, sku_name, batch_code, price,
                          internal_dup, existing_dup, source_file, source_line, first_row
                   FROM codes_check_temp
                   WHERE merchant_id = $1 AND row_number ",
            $cursor,
            " $2 AND row_number BETWEEN $3 AND $4 AND ",
            row_filter!("$5", "$6", "$7", "$8"),
            " AND ($9::text IS NULL OR ",
            code_search!("$9", "$10"),
            ")
                   ORDER BY row_number ",
            $order,
            " LIMIT $11) s
             LEFT JOIN codes_check_temp f ON f.merchant_id = s.merchant_id AND f.row_number = s.first_row
             LEFT JOIN codes c ON s.existing_dup AND c.merchant_id = s.merchant_id AND c.code = s.code
             LEFT JOIN codes_import_jobs j ON j.id = c.import_job_id
             ORDER BY s.row_number"
        )
    };
}

/// Where a page starts: after a row, or where it ends: before a row.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    After(i64),
    Before(i64),
}

/// One page of the merchant's staged rows as `view` says, `limit` rows long. Every page is a
/// walk along the primary key from its cursor, so page 100,000 costs what page 1 does. A jump to
/// page N, or to the page of a row, finds its cursor from the check's figures per block of
/// [`BLOCK_ROWS`] row numbers and then counts within one block: no count over the batch, no
/// OFFSET over millions. A search by code has no figures: its rows are counted, and a jump
/// skips to its page, by scans of the merchant's rows (no index on staged codes).
pub async fn preview(pool: &PgPool, merchant: Uuid, view: &ReviewView, limit: i64) -> Result<PreviewPage, sqlx::Error> {
    let figures = match view.search {
        None => current_figures(pool, merchant).await?,
        Some(_) => None,
    };
    let file = view.file.as_deref();
    let filter = Filter { merchant, view };
    // Rows of one file lie within its blocks; without figures, the whole batch is walked.
    let (low, high) = match (&figures, file) {
        (Some(figures), Some(_)) => {
            let blocks = figures.matching_per_block(RowFilter::All, file);
            match (blocks.first(), blocks.last()) {
                (Some((first, _)), Some((last, _))) => (first * BLOCK_ROWS, (last + 1) * BLOCK_ROWS - 1),
                _ => return Ok(PreviewPage { page: 1, pages: Some(1), matching: Some(0), ..PreviewPage::default() }),
            }
        }
        _ => (0, i64::MAX),
    };
    let per_block = figures.as_ref().map(|figures| figures.matching_per_block(view.filter, file));
    // A search has no figures: its rows are counted by a scan of their own.
    let matching = match (&per_block, &view.search) {
        (Some(blocks), _) => Some(blocks.iter().map(|(_, n)| n).sum::<i64>()),
        (None, Some(search)) => Some(filter.count_found(pool, search).await?),
        (None, None) => None,
    };
    let pages = matching.map(|m| ((m + limit - 1) / limit).max(1));

    let first_page = (Cursor::After(low - 1), 1);
    let (cursor, page) = match (&per_block, view.row, view.after, view.before) {
        (Some(blocks), Some(row), ..) => {
            let page = filter.position(pool, blocks, row).await? / limit + 1;
            filter.page_start(pool, blocks, page, limit).await?.map_or(first_page, |after| (Cursor::After(after), page))
        }
        (None, Some(row), ..) => (Cursor::After(row - 1), view.page),
        (_, None, Some(after), _) => (Cursor::After(after), view.page),
        (_, None, None, Some(before)) => (Cursor::Before(before), view.page),
        (Some(blocks), None, None, None) if view.page > 1 => {
            let page = view.page.min(pages.unwrap_or(1));
            filter.page_start(pool, blocks, page, limit).await?.map_or(first_page, |after| (Cursor::After(after), page))
        }
        (None, None, None, None) if view.page > 1 => {
            let page = view.page.min(pages.unwrap_or(1));
            match &view.search {
                Some(search) => filter
                    .found_before(pool, search, (page - 1) * limit)
                    .await?
                    .map_or(first_page, |after| (Cursor::After(after), page)),
                // No figures to place the page by (none yet, or stale): from the start.
                None => first_page,
            }
        }
        _ => first_page,
    };
    let (dups, flags) = view.filter.flags();
    let (internal, existing) = flags.unzip();
    let (code, prefix) = view.search.as_ref().map(|s| (s.code.as_str(), s.prefix)).unzip();
    let (sql, at) = match cursor {
        Cursor::After(row) => (preview_page!(">", "ASC"), row),
        Cursor::Before(row) => (preview_page!("<", "DESC"), row),
    };
    let mut rows = sqlx::query_as::<_, PreviewRow>(sql)
        .bind(merchant)
        .bind(at)
        .bind(low)
        .bind(high)
        .bind(dups)
        .bind(internal)
        .bind(existing)
        .bind(file)
        .bind(code)
        .bind(prefix.unwrap_or(false))
        .bind(limit + 1)
        .fetch_all(pool)
        .await?;
    let more = rows.len() as i64 > limit;
    let (page, next_after, previous_before) = match cursor {
        Cursor::After(_) => {
            rows.truncate(limit as usize);
            (page, more.then(|| rows.last().map(|r| r.row_number)).flatten(), None)
        }
        Cursor::Before(_) => {
            if more {
                rows.remove(0);
            }
            let page = if more { page.max(2) } else { 1 };
            (page, rows.last().map(|r| r.row_number), None)
        }
    };
    let previous_before = previous_before.or_else(|| (page > 1).then(|| rows.first().map(|r| r.row_number)).flatten());
    let marked_row = view.row.filter(|row| rows.iter().any(|r| r.row_number == *row));
    Ok(PreviewPage { rows, page, pages, matching, next_after, previous_before, marked_row })
}

/// The rows a view filters, for the counts within one block.
struct Filter<'a> {
    merchant: Uuid,
    view: &'a ReviewView,
}

impl Filter<'_> {
    /// How many rows of the view come before `row`: the figures' count of the blocks before
    /// its block, and a count within its block.
    async fn position(&self, pool: &PgPool, blocks: &[(i64, i64)], row: i64) -> Result<i64, sqlx::Error> {
        let block = row / BLOCK_ROWS;
        let before: i64 = blocks.iter().filter(|(b, _)| *b < block).map(|(_, n)| n).sum();
        let (dups, flags) = self.view.filter.flags();
        let (internal, existing) = flags.unzip();
        let within: i64 = sqlx::query_scalar(concat!(
            "SELECT count(*) FROM codes_check_temp
             WHERE merchant_id = $1 AND row_number >= $2 AND row_number < $3 AND ",
            row_filter!("$4", "$5", "$6", "$7")
        ))
        .bind(self.merchant)
        .bind(block * BLOCK_ROWS)
        .bind(row)
        .bind(dups)
        .bind(internal)
        .bind(existing)
        .bind(self.view.file.as_deref())
        .fetch_one(pool)
        .await?;
        Ok(before + within)
    }

    /// The cursor (the row before it) where page `page` of the view starts: the block that
    /// holds its first row, by the figures, then that row's place within the block. `None` if
    /// the figures and the rows disagree (the page then starts at the beginning).
    async fn page_start(
        &self,
        pool: &PgPool,
        blocks: &[(i64, i64)],
        page: i64,
        limit: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let mut skip = (page - 1) * limit;
        let Some(block) = blocks.iter().find_map(|(block, n)| {
            if skip < *n {
                Some(*block)
            } else {
                skip -= n;
                None
            }
        }) else {
            return Ok(None);
        };
        let (dups, flags) = self.view.filter.flags();
        let (internal, existing) = flags.unzip();
        let first: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT row_number FROM codes_check_temp
             WHERE merchant_id = $1 AND row_number >= $2 AND row_number < $3 AND ",
            row_filter!("$4", "$5", "$6", "$7"),
            " ORDER BY row_number OFFSET $8 LIMIT 1"
        ))
        .bind(self.merchant)
        .bind(block * BLOCK_ROWS)
        .bind((block + 1) * BLOCK_ROWS)
        .bind(dups)
        .bind(internal)
        .bind(existing)
        .bind(self.view.file.as_deref())
        .bind(skip)
        .fetch_optional(pool)
        .await?;
        Ok(first.map(|row| row - 1))
    }

    /// How many rows of the view a search by code finds.
    async fn count_found(&self, pool: &PgPool, search: &CodeSearch) -> Result<i64, sqlx::Error> {
        self.found(found!("count(*)"), search).fetch_one(pool).await
    }

    /// The cursor of a page of a search: the last of the first `skip` rows it finds.
    async fn found_before(&self, pool: &PgPool, search: &CodeSearch, skip: i64) -> Result<Option<i64>, sqlx::Error> {
        self.found(concat!(found!("row_number"), " ORDER BY row_number OFFSET $8 LIMIT 1"), search)
            .bind(skip - 1)
            .fetch_optional(pool)
            .await
    }

    /// `sql`, which reads the rows of the view that a search finds ([`found!`]), with its
    /// parameters bound.
    fn found<'q, O>(
        &'q self,
        sql: &'static str,
        search: &'q CodeSearch,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let (dups, flags) = self.view.filter.flags();
        let (internal, existing) = flags.unzip();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.merchant)
            .bind(dups)
            .bind(internal)
            .bind(existing)
            .bind(self.view.file.as_deref())
            .bind(&search.code)
            .bind(search.prefix)
    }
}
