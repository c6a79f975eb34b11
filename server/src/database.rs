//! The database at start-up: created if missing, checked for what Code Import relies on (a
//! session of its own per connection, no row-level security hiding codes from it), migrated,
//! and what the migrations adopted said once in the log.

use std::time::Duration;

use sqlx::{migrate::MigrateDatabase, postgres::PgPoolOptions, Connection, PgConnection, PgPool, Postgres, Row};

use crate::{redact, StartupError, MIGRATOR};

/// Creates the database if it does not exist, refuses a pooler in transaction mode and a role
/// that row-level security applies to, connects a pool and applies the migrations. Fails with
/// a one-line reason.
pub async fn prepare_database(url: &str) -> Result<PgPool, StartupError> {
    let shown = redact(url);
    let exists = Postgres::database_exists(url)
        .await
        .map_err(|source| StartupError::Unreachable { url: shown.clone(), source })?;
    if !exists {
        if let Err(source) = Postgres::create_database(url).await {
            // Another server process may have created it at the same moment.
            if !Postgres::database_exists(url).await.unwrap_or(false) {
                return Err(StartupError::CreateDatabase { url: shown, source });
            }
        }
        tracing::info!(database = %shown, "created the database");
    }
    ensure_session_per_connection(url).await?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| StartupError::Unreachable { url: shown.clone(), source })?;
    // Before the migrations too: they read codes to adopt it.
    ensure_no_row_security(&pool, &shown).await?;
    MIGRATOR.run(&pool).await.map_err(|source| StartupError::Migrate { url: shown.clone(), source })?;
    ensure_no_row_security(&pool, &shown).await?;
    Ok(pool)
}

/// The advisory lock class of the pooler probe (distinct from the operations' class).
const PROBE_LOCK_CLASS: i32 = 0x706f_6f6c; // "pool"

/// Refuses a connection string whose connections do not each keep one database session: a
/// pooler in transaction or statement mode (PgBouncer, Supavisor) hands a client's statements
/// to whichever server connection is free, so the session-level advisory lock that keeps one
/// operation per merchant would be held by a session nobody owns, and shared by strangers.
///
/// Probe: connection A takes a lock; connection B tries the same lock, and A asks whether its
/// own session holds it. With a session per connection B is refused and A holds it, always.
/// Under transaction pooling the server connection A used goes back to the pool after each
/// statement and B (taken next from an idle pool) is handed that same session — B gets the
/// lock, or A finds itself in another session. Uses the simple protocol only (no prepared
/// statements), which such poolers pass through, so the answer is this one line, not a
/// protocol error.
pub async fn ensure_session_per_connection(url: &str) -> Result<(), StartupError> {
    let shown = redact(url);
    let unreachable = |source| StartupError::Unreachable { url: shown.clone(), source };
    let mut a = PgConnection::connect(url).await.map_err(unreachable)?;
    let mut b = PgConnection::connect(url).await.map_err(unreachable)?;
    let mut shared = false;
    for _ in 0..3 {
        let key = (uuid::Uuid::new_v4().as_u64_pair().0 as i32).abs();
        let lock = format!("SELECT pg_advisory_lock({PROBE_LOCK_CLASS}, {key})");
        let try_lock = format!("SELECT pg_try_advisory_lock({PROBE_LOCK_CLASS}, {key})");
        let holds = format!(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                            AND classid = {PROBE_LOCK_CLASS}::oid AND objid = {key}::oid AND objsubid = 2)"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(lock)).execute(&mut a).await.map_err(unreachable)?;
        let b_took: bool =
            sqlx::raw_sql(sqlx::AssertSqlSafe(try_lock)).fetch_one(&mut b).await.map_err(unreachable)?.get(0);
        let a_holds: bool =
            sqlx::raw_sql(sqlx::AssertSqlSafe(holds)).fetch_one(&mut a).await.map_err(unreachable)?.get(0);
        for conn in [&mut a, &mut b] {
            sqlx::raw_sql("SELECT pg_advisory_unlock_all()").execute(conn).await.map_err(unreachable)?;
        }
        if b_took || !a_holds {
            shared = true;
            break;
        }
    }
    let _ = a.close().await;
    let _ = b.close().await;
    if shared {
        return Err(StartupError::SharedSessions { url: shown });
    }
    Ok(())
}

/// Refuses a role that row-level security applies to on the tables Code Import reads and
/// writes: a policy (the original system has one on `codes`) would hide production codes from
/// the duplicate check and refuse the insert's rows, and nothing would say so. The tables'
/// owner and roles with `BYPASSRLS` are not subject to it (unless `FORCE ROW LEVEL SECURITY`).
async fn ensure_no_row_security(pool: &PgPool, shown: &str) -> Result<(), StartupError> {
    let subject: Option<(String, String)> = sqlx::query_as(
        "SELECT t.name, current_user::text
         FROM unnest(ARRAY['codes', 'codes_check_temp', 'codes_import_jobs']) AS t(name)
         WHERE to_regclass(t.name) IS NOT NULL AND row_security_active(to_regclass(t.name))
         ORDER BY t.name LIMIT 1",
    )
    .fetch_optional(pool)
    .await
    .map_err(|source| StartupError::Unreachable { url: shown.to_owned(), source })?;
    match subject {
        Some((table, role)) => Err(StartupError::RowSecurity { table, role }),
        None => Ok(()),
    }
}

/// One line on the original system's staging table, while it is kept beside this app's: what
/// the migration that adopted it carried into staging and what it left there. `None` when
/// there is no such table.
pub async fn original_staging_note(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let kept: bool =
        sqlx::query_scalar("SELECT to_regclass('codes_check_temp_original') IS NOT NULL").fetch_one(pool).await?;
    if !kept {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE rows_carried > 0) AS merchants,
                COALESCE(sum(rows_carried), 0)::bigint AS carried,
                COALESCE(sum(rows_kept), 0)::bigint AS kept,
                min(adopted_at)::date::text AS adopted
         FROM original_staging_adoption",
    )
    .fetch_one(pool)
    .await?;
    let (merchants, carried, kept, adopted): (i64, i64, i64, Option<String>) =
        (row.get("merchants"), row.get("carried"), row.get("kept"), row.get("adopted"));
    if carried == 0 && kept == 0 {
        return Ok(Some(
            "the original staging table was empty when it was adopted; it is kept, empty, as \
             codes_check_temp_original, which can be dropped"
                .to_owned(),
        ));
    }
    Ok(Some(format!(
        "the original staging table was adopted on {}: {carried} of its rows were carried into the staging of \
         {merchants} merchant(s) as one batch each (duplicate flags reset: run the check), {kept} that cannot be \
         staged (no merchant, a blank code, a points or price that is not a number) were not; all of them are \
         kept as they were in codes_check_temp_original, which can be dropped once no longer needed",
        adopted.as_deref().unwrap_or("an unknown date")
    )))
}
