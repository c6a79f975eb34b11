//! One operation at a time per merchant, across server processes: a session-level advisory
//! lock held on a connection of its own for as long as the operation runs. If the server
//! dies, PostgreSQL drops the connection and with it the lock. Reads recognise such an orphan
//! from `pg_locks` (a `running` row whose lock nobody holds reads as failed) and change
//! nothing; the row is marked failed at the next operation's start and at server start.

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{kind_name, with_article, Operation, OperationStatus};
use crate::error::AppError;

/// The advisory lock class of merchant operations ("code" in ASCII); the object is a hash of
/// the merchant's id.
const LOCK_CLASS: i32 = 0x636f_6465;

/// What an interrupted operation says.
pub const INTERRUPTED: &str = "The server stopped while this ran; nothing it did was kept. Run it again.";

/// What a job interrupted by its server's death says.
pub const INTERRUPTED_INSERT: &str = "The server stopped during the insert; nothing was inserted. Run it again.";

/// What an operation, and a job, stopped by their server's shutdown (SIGTERM) say.
pub const SHUT_DOWN: &str = "The server shut down while this ran; nothing it did was kept. Run it again.";
pub const SHUT_DOWN_INSERT: &str = "The server shut down during the insert; nothing was inserted. Run it again.";

/// The operations this process runs: id, merchant, and the backend that holds the lock, so a
/// shutdown can stop them ([`stop_all`]).
static IN_PROCESS: std::sync::Mutex<Vec<(Uuid, Uuid, i32)>> = std::sync::Mutex::new(Vec::new());
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is shutting down: an operation failing now failed because of it.
pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

fn in_process() -> std::sync::MutexGuard<'static, Vec<(Uuid, Uuid, i32)>> {
    IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stops every operation this process runs, at shutdown: its backend is terminated (its
/// transaction rolls back, nothing of an insert stays), then its row, its job and its batch are
/// marked as a dead server's would be, with the shutdown as the reason. Returns how many.
pub async fn stop_all(pool: &PgPool) -> usize {
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    let running = std::mem::take(&mut *in_process());
    for (operation, merchant, backend) in &running {
        tracing::warn!(%operation, %merchant, "stopping the operation: the server shuts down");
        if let Err(error) = stop(pool, *merchant, *backend).await {
            tracing::error!(%operation, %error, "could not stop the operation; the next start marks it failed");
        }
    }
    running.len()
}

async fn stop(pool: &PgPool, merchant: Uuid, backend: i32) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_terminate_backend($1)").bind(backend).execute(pool).await?;
    let mut conn = own_connection(pool).await?;
    // The lock goes with the backend, a moment after it is told to end.
    for _ in 0..50 {
        if try_lock(&mut conn, merchant).await? {
            let failed = fail_orphans(&mut conn, merchant, (SHUT_DOWN, SHUT_DOWN_INSERT)).await;
            let _ = unlock(&mut conn, merchant).await;
            let _ = conn.close().await;
            return failed.map(|_| ());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = conn.close().await;
    Ok(())
}

/// A running operation: its row and the connection that holds the merchant's lock. Work that
/// must not outlive the lock runs on `conn`.
pub struct Running {
    pub id: Uuid,
    pub merchant: Uuid,
    pub conn: PgConnection,
    kind: &'static str,
    started: std::time::Instant,
}

/// How a running operation tells how far it is: the metrics' gauges of its kind, and its phase.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    id: Uuid,
    kind: &'static str,
}

impl Progress {
    /// Records that the operation has moved `rows` rows in `since`'s time, in the metrics'
    /// gauges of its kind: the rows so far and their rate.
    pub fn rows_moved(&self, rows: i64, since: std::time::Instant) {
        metrics::gauge!("operation_rows_done", "kind" => self.kind).set(rows as f64);
        let seconds = since.elapsed().as_secs_f64();
        if seconds > 0.0 {
            metrics::gauge!("operation_rows_per_second", "kind" => self.kind).set(rows as f64 / seconds);
        }
    }

    /// Records how far a step that reports as it goes has come: `rows` in `since`'s time, and
    /// `words` as the phase. Frequent, so it logs at debug level only (a phase's start is
    /// logged by [`Running::phase`]).
    pub async fn report(&self, pool: &PgPool, words: &str, rows: i64, since: std::time::Instant) {
        self.rows_moved(rows, since);
        tracing::debug!(phase = words, rows, "operation progress");
        record(pool, self.id, words, Some(rows)).await;
    }
}

/// Whether some session holds the merchant lock of `$merchant` (an SQL expression naming the
/// merchant's id): the same key `try_lock` takes, as `pg_locks` shows it.
macro_rules! merchant_locked {
    ($merchant:literal) => {
        concat!(
            "EXISTS (SELECT FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                         AND l.classid = 1668244581::oid
                         AND l.objid = (hashtext(",
            $merchant,
            "::text)::bigint & 4294967295)::oid)"
        )
    };
}
pub(crate) use merchant_locked;

/// `SELECT` of [`Operation`]s followed by `$rest` (a literal: the statement stays static). A
/// `running` row whose lock nobody holds lost its server: it reads as failed.
macro_rules! select_operations {
    ($rest:literal) => {
        concat!(
            "SELECT o.id, o.merchant_id, o.kind,
                    CASE WHEN o.status = 'running' AND NOT ",
            merchant_locked!("o.merchant_id"),
            " THEN 'failed' ELSE o.status END AS status,
                    o.phase, u.email AS started_by_email, o.started_at, o.finished_at,
                    CASE WHEN o.status = 'running' AND NOT ",
            merchant_locked!("o.merchant_id"),
            " THEN '",
            "The server stopped while this ran; nothing it did was kept. Run it again.",
            "' ELSE o.error_message END AS error_message
             FROM merchant_operations o LEFT JOIN users u ON u.id = o.started_by ",
            $rest
        )
    };
}

async fn try_lock(conn: &mut PgConnection, merchant: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2::text))")
        .bind(LOCK_CLASS)
        .bind(merchant)
        .fetch_one(conn)
        .await
}

async fn unlock(conn: &mut PgConnection, merchant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2::text))")
        .bind(LOCK_CLASS)
        .bind(merchant)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the merchant's `running` rows failed, and an insert's job, with `why` (the
/// operation's words and the job's); only for a caller that holds the lock.
async fn fail_orphans(conn: &mut PgConnection, merchant: Uuid, why: (&str, &str)) -> Result<u64, sqlx::Error> {
    let failed = sqlx::query(
        "UPDATE merchant_operations SET status = 'failed', error_message = $2, finished_at = now(), updated_at = now()
         WHERE merchant_id = $1 AND status = 'running'",
    )
    .bind(merchant)
    .bind(why.0)
    .execute(&mut *conn)
    .await?;
    // An insert that died with its server rolled back with its connection: its job failed.
    sqlx::query(
        "UPDATE codes_import_jobs SET status = 'failed', error_message = $2
         WHERE merchant_id = $1 AND status IN ('pending', 'validating', 'processing')",
    )
    .bind(merchant)
    .bind(why.1)
    .execute(&mut *conn)
    .await?;
    // …and its batch is checked again, as reads already show it.
    sqlx::query(
        "UPDATE staging_batches SET state = 'checked', job_id = NULL, updated_at = now()
         WHERE merchant_id = $1 AND state = 'inserting'",
    )
    .bind(merchant)
    .execute(conn)
    .await?;
    Ok(failed.rows_affected())
}

/// A connection outside the pool: it is closed, not reused, when dropped, so a lock on it
/// can never leak into another request.
async fn own_connection(pool: &PgPool) -> Result<PgConnection, sqlx::Error> {
    Ok(pool.acquire().await?.detach())
}

/// Why an operation cannot start, with what is known of it; an [`AppError`] at the boundary.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Another operation holds the merchant: what, who started it and when.
    #[error("{what} is running for this merchant (started by {by} at {at} UTC). Wait for it to finish.")]
    Busy { what: String, by: String, at: String },
    /// The lock is taken but its operation's row is not there yet.
    #[error("Another operation is starting for this merchant. Try again in a moment.")]
    Starting,
    /// One runs (for steps that are not operations themselves but must not overlap one).
    #[error("{0} is running for this merchant. Wait for it to finish.")]
    Running(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl OperationError {
    /// What the user is told, and an operation's record keeps; logs nothing. A refusal is
    /// `Busy`: the same request can succeed once the running operation has ended.
    pub(crate) fn shown(&self) -> AppError {
        match self {
            OperationError::Database(error) => AppError::of_database(error),
            busy => AppError::Busy(busy.to_string()),
        }
    }
}

impl From<OperationError> for AppError {
    /// The boundary: a fault of the database is logged here, once.
    fn from(error: OperationError) -> Self {
        match error {
            OperationError::Database(error) => AppError::from(error),
            refused => refused.shown(),
        }
    }
}

/// How many times `begin` asks again for a lock that no running operation holds (50 ms apart).
const LOCK_RETRIES: u32 = 40;

/// Starts an operation of `kind` for `merchant`, or says which one is running (`Busy`).
pub async fn begin(pool: &PgPool, merchant: Uuid, kind: &str, user: Option<Uuid>) -> Result<Running, OperationError> {
    let mut conn = own_connection(pool).await?;
    // A lock held with no operation running is one being taken or let go: an operation that
    // just recorded its end releases the lock a moment later. Ask again for a little while
    // before answering `Starting`, so that a step right after another is not refused.
    let mut tries = 0;
    while !try_lock(&mut conn, merchant).await? {
        match busy(pool, merchant).await {
            OperationError::Starting if tries < LOCK_RETRIES => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            refused => {
                let _ = conn.close().await;
                return Err(refused);
            }
        }
    }
    let started = async {
        let orphans = fail_orphans(&mut conn, merchant, (INTERRUPTED, INTERRUPTED_INSERT)).await?;
        if orphans > 0 {
            tracing::warn!(%merchant, orphans, "marked interrupted operations failed");
        }
        #[derive(sqlx::FromRow)]
        struct Started {
            id: Uuid,
            backend: i32,
        }
        sqlx::query_as::<_, Started>(
            "INSERT INTO merchant_operations (id, merchant_id, kind, started_by, phase) VALUES ($1, $2, $3, $4, 'Starting')
             RETURNING id, pg_backend_pid() AS backend",
        )
        .bind(Uuid::new_v4())
        .bind(merchant)
        .bind(kind)
        .bind(user)
        .fetch_one(&mut conn)
        .await
    }
    .await;
    match started {
        Ok(started) => {
            let id = started.id;
            in_process().push((id, merchant, started.backend));
            tracing::info!(operation = %id, %merchant, kind, "operation started");
            metrics::counter!("operations_started_total", "kind" => kind_name(kind)).increment(1);
            metrics::gauge!("operations_running", "kind" => kind_name(kind)).increment(1);
            metrics::gauge!("operation_rows_done", "kind" => kind_name(kind)).set(0.0);
            Ok(Running { id, merchant, conn, kind: kind_name(kind), started: std::time::Instant::now() })
        }
        Err(error) => {
            let _ = conn.close().await;
            Err(error.into())
        }
    }
}

/// What is running for `merchant`, as the refusal names it.
async fn busy(pool: &PgPool, merchant: Uuid) -> OperationError {
    match running(pool, merchant).await {
        Ok(Some(op)) => OperationError::Busy {
            what: with_article(op.kind_name()),
            by: op.started_by_email.clone().unwrap_or_else(|| "the system".to_owned()),
            at: op.started_at.format("%H:%M:%S").to_string(),
        },
        _ => OperationError::Starting,
    }
}

/// Records what operation `id` is doing now (on the pool: visible at once); a failure to
/// record it is logged, not the operation's failure.
pub async fn record_phase(pool: &PgPool, id: Uuid, phase: &str) {
    record(pool, id, phase, None).await;
}

/// Records operation `id`'s phase, and with `rows` how many rows it has moved so far (else the
/// count stays as it was).
async fn record(pool: &PgPool, id: Uuid, phase: &str, rows: Option<i64>) {
    if let Err(error) = sqlx::query(
        "UPDATE merchant_operations SET phase = $2, rows_done = coalesce($3, rows_done), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .bind(rows)
    .execute(pool)
    .await
    {
        tracing::warn!(operation = %id, %error, "could not record the phase");
    }
}

impl Running {
    /// The span a background operation runs in: every line it logs carries its id, kind and
    /// merchant (not the request's: it outlives the request that started it).
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(parent: None, "operation", operation_id = %self.id, kind = self.kind, merchant = %self.merchant)
    }

    /// Records that the operation has moved `rows` rows in `since`'s time (see
    /// [`Progress::rows_moved`]).
    pub fn rows_moved(&self, rows: i64, since: std::time::Instant) {
        self.progress().rows_moved(rows, since);
    }

    /// What reports how far the operation is, apart from its connection (which a transaction
    /// borrows meanwhile).
    pub fn progress(&self) -> Progress {
        Progress { id: self.id, kind: self.kind }
    }

    /// When the operation began.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    pub async fn phase(&self, pool: &PgPool, phase: &str) {
        tracing::info!(phase, seconds = self.started.elapsed().as_secs_f64(), "operation phase");
        record_phase(pool, self.id, phase).await;
    }

    /// Records the outcome and releases the merchant. If even that fails (the database went
    /// away), closing the connection releases the lock and the row is failed by whoever
    /// looks next.
    pub async fn finish(mut self, outcome: Result<serde_json::Value, AppError>) {
        in_process().retain(|(id, ..)| *id != self.id);
        let seconds = self.started.elapsed().as_secs_f64();
        let outcome_name = if outcome.is_ok() { "completed" } else { "failed" };
        metrics::counter!("operations_finished_total", "kind" => self.kind, "status" => outcome_name).increment(1);
        metrics::histogram!("operation_seconds", "kind" => self.kind).record(seconds);
        metrics::gauge!("operations_running", "kind" => self.kind).decrement(1);
        let (status, result, error) = match outcome {
            Ok(result) => (OperationStatus::Completed, Some(result), None),
            // Whatever it failed on, a shutdown stopped it.
            Err(_) if shutting_down() => (OperationStatus::Failed, None, Some(SHUT_DOWN.to_owned())),
            Err(error) => {
                tracing::warn!(operation = %self.id, %error, "operation failed");
                (OperationStatus::Failed, None, Some(error.to_string()))
            }
        };
        let recorded = sqlx::query(
            "UPDATE merchant_operations
             SET status = $2, result = $3, error_message = $4, phase = '', finished_at = now(), updated_at = now()
             WHERE id = $1",
        )
        .bind(self.id)
        .bind(status.as_str())
        .bind(result)
        .bind(error)
        .execute(&mut self.conn)
        .await;
        if let Err(error) = recorded {
            tracing::error!(operation = %self.id, %error, "could not record the outcome");
        } else {
            tracing::info!(
                operation = %self.id,
                status = status.as_str(),
                seconds = self.started.elapsed().as_secs_f64(),
                "operation finished"
            );
        }
        let _ = unlock(&mut self.conn, self.merchant).await;
        let _ = self.conn.close().await;
    }
}

/// The merchant's running operation, if any (one whose server died is not). One query on a
/// pooled connection; changes nothing.
pub async fn running(pool: &PgPool, merchant: Uuid) -> Result<Option<Operation>, sqlx::Error> {
    sqlx::query_as::<_, Operation>(select_operations!("WHERE o.merchant_id = $1 AND o.status = 'running'"))
        .bind(merchant)
        .fetch_optional(pool)
        .await
        .map(|op| op.filter(Operation::is_running))
}

/// The operations running for `merchants` (every merchant if `None`); one query.
pub async fn running_of(pool: &PgPool, merchants: Option<&[Uuid]>) -> Result<Vec<Operation>, sqlx::Error> {
    let running = sqlx::query_as::<_, Operation>(select_operations!(
        "WHERE ($1::uuid[] IS NULL OR o.merchant_id = ANY($1)) AND o.status = 'running'"
    ))
    .bind(merchants)
    .fetch_all(pool)
    .await?;
    Ok(running.into_iter().filter(Operation::is_running).collect())
}

/// The merchant's latest operation of `kind` (failed, if its server died). One query; changes
/// nothing.
pub async fn latest(pool: &PgPool, merchant: Uuid, kind: &str) -> Result<Option<Operation>, sqlx::Error> {
    sqlx::query_as::<_, Operation>(select_operations!(
        "WHERE o.merchant_id = $1 AND o.kind = $2 ORDER BY o.started_at DESC LIMIT 1"
    ))
    .bind(merchant)
    .bind(kind)
    .fetch_optional(pool)
    .await
}

/// The result of the merchant's latest completed operation of `kind`.
pub async fn latest_result(
    pool: &PgPool,
    merchant: Uuid,
    kind: &str,
) -> Result<Option<(Operation, serde_json::Value)>, sqlx::Error> {
    let row = sqlx::query_as::<_, (Uuid, serde_json::Value)>(
        "SELECT id, result FROM merchant_operations
         WHERE merchant_id = $1 AND kind = $2 AND status = 'completed' AND result IS NOT NULL
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(merchant)
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    let Some((id, result)) = row else {
        return Ok(None);
    };
    let op = sqlx::query_as::<_, Operation>(select_operations!("WHERE o.id = $1")).bind(id).fetch_one(pool).await?;
    Ok(Some((op, result)))
}

/// Marks failed a `running` row of `merchant` whose lock nobody holds (its server died).
async fn reap(pool: &PgPool, merchant: Uuid) -> Result<(), sqlx::Error> {
    let listed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM merchant_operations WHERE merchant_id = $1 AND status = 'running')",
    )
    .bind(merchant)
    .fetch_one(pool)
    .await?;
    if !listed {
        return Ok(());
    }
    let mut conn = own_connection(pool).await?;
    if try_lock(&mut conn, merchant).await? {
        let failed = fail_orphans(&mut conn, merchant, (INTERRUPTED, INTERRUPTED_INSERT)).await;
        let _ = unlock(&mut conn, merchant).await;
        if failed? > 0 {
            tracing::warn!(%merchant, "marked an interrupted operation failed");
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// At server start: every operation left `running` by a server that died is marked failed.
pub async fn reap_all(pool: &PgPool) -> Result<(), sqlx::Error> {
    let merchants: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT merchant_id FROM merchant_operations WHERE status = 'running'")
            .fetch_all(pool)
            .await?;
    for merchant in merchants {
        reap(pool, merchant).await?;
    }
    Ok(())
}

/// `Conflict` naming the running operation if one runs for `merchant` (for steps such as
/// starting an upload, which are not operations themselves but must not overlap one).
pub async fn ensure_idle(pool: &PgPool, merchant: Uuid) -> Result<(), OperationError> {
    match running(pool, merchant).await? {
        Some(op) => Err(OperationError::Running(with_article(kind_name(&op.kind)))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_say_what_the_orphans_are_marked_with() {
        assert!(select_operations!("").contains(INTERRUPTED));
        assert!(merchant_locked!("m").contains(&format!("{}::oid", LOCK_CLASS)));
    }
}
