//! Insert, verify, roll back and clear, against the real database: what reaches `codes`, what
//! the job records, and what is refused.

use std::time::Duration;

use app::{
    duplicates::ssr as duplicates,
    error::AppError,
    jobs::{ssr as jobs, JobDetail, JobStatus},
    operations::ssr as operations,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{hold_codes, kill_operation_connections, TestDb};

/// A merchant with a user, `rows` staged rows in two files (every 10th code repeats an
/// earlier one, every 7th is already in production), and the duplicate check done.
struct World {
    pool: PgPool,
    merchant: Uuid,
    user: Uuid,
    _db: TestDb,
}

async fn world(rows: i64) -> World {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchant = app::admin::ssr::create_merchant(&pool, "Insert").await.unwrap().id;
    let user =
        app::auth::ssr::create_user(&pool, "ins@example.com", "a long password here".into(), app::auth::Role::Ops, &[])
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, points, source_file, source_line)
         SELECT $1, n, 'C-' || CASE WHEN n % 10 = 0 THEN n - 5 ELSE n END, n % 100,
                CASE WHEN n <= $2 / 2 THEN 'a.csv' ELSE 'b.csv' END, n + 1
         FROM generate_series(1, $2) AS n",
    )
    .bind(merchant)
    .bind(rows)
    .execute(&pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&pool, merchant).await;
    sqlx::query("INSERT INTO codes (merchant_id, code) SELECT $1, 'C-' || n FROM generate_series(7, $2, 7) AS n")
        .bind(merchant)
        .bind(rows)
        .execute(&pool)
        .await
        .unwrap();
    let world = World { pool, merchant, user, _db: db };
    world.check().await;
    world
}

impl World {
    async fn check(&self) {
        duplicates::start_check(&self.pool, self.merchant, None).await.unwrap();
        for _ in 0..600 {
            let op = operations::latest(&self.pool, self.merchant, "check").await.unwrap().unwrap();
            if !op.is_running() {
                assert_eq!(op.status, "completed", "{:?}", op.error_message);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the check did not finish");
    }

    async fn clean(&self) -> i64 {
        duplicates::review_state(&self.pool, self.merchant).await.unwrap().figures.unwrap().overall.clean_count
    }

    /// Inserts and waits for the job to finish.
    async fn insert(&self) -> JobDetail {
        let job = jobs::start_insert(&self.pool, self.merchant, self.user, "YES").await.unwrap();
        self.finished(job).await
    }

    async fn finished(&self, job: Uuid) -> JobDetail {
        for _ in 0..600 {
            let detail = jobs::job_detail(&self.pool, job).await.unwrap().expect("the job exists");
            let running = operations::running(&self.pool, self.merchant).await.unwrap();
            if !detail.summary.status.is_running() && running.is_none() {
                return detail;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the job did not finish");
    }

    async fn codes_of(&self, job: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1")
            .bind(job)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn codes(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&self.pool).await.unwrap()
    }
}

#[tokio::test]
async fn an_insert_adds_exactly_the_clean_codes_stamped_with_its_job_and_verify_recounts_them() {
    let w = world(2_000).await;
    let clean = w.clean().await;
    let before = w.codes().await;
    assert!(clean > 1_000);

    let refused = AppError::from(jobs::start_insert(&w.pool, w.merchant, w.user, "yes please").await.unwrap_err());
    assert_eq!(refused, AppError::invalid("Type YES to confirm the insert."));

    let job = w.insert().await;
    let summary = &job.summary;
    assert_eq!(summary.status, JobStatus::Completed, "{:?}", summary.error_message);
    assert_eq!((summary.total_codes_to_insert, summary.codes_inserted), (Some(clean), Some(clean)));
    assert!(summary.completed_at.is_some());
    assert_eq!(summary.created_by, Some(w.user));
    assert_eq!((job.preflight.passed, job.preflight.clean_count), (Some(true), Some(clean)));
    assert_eq!(w.codes_of(summary.id).await, clean);
    assert_eq!(w.codes().await, before + clean);
    // Exactly the clean rows, with their fields: the two sets differ in nothing.
    let wrong: i64 = sqlx::query_scalar(
        "WITH clean AS (SELECT code, points FROM codes_check_temp
                        WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup),
              job AS (SELECT code, points FROM codes WHERE import_job_id = $2)
         SELECT (SELECT count(*) FROM (SELECT * FROM clean EXCEPT ALL SELECT * FROM job) a)
              + (SELECT count(*) FROM (SELECT * FROM job EXCEPT ALL SELECT * FROM clean) b)",
    )
    .bind(w.merchant)
    .bind(summary.id)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(wrong, 0);
    let verification = jobs::verify_job(&w.pool, summary.id).await.unwrap();
    assert_eq!((verification.codes_inserted, verification.codes_found), (Some(clean), clean));
    assert!(verification.matches());

    // Seen: after an insert, the review still offered the insert, and its pre-flight said the
    // user's own codes had "reached production meanwhile". The batch is inserted: no second
    // insert, no check, no pre-flight of it; the review says which job inserted it.
    let batch = app::batch::ssr::latest(&w.pool, w.merchant).await.unwrap().unwrap();
    assert_eq!(
        (batch.state, batch.job_id, batch.codes_inserted),
        (app::batch::BatchState::Inserted, Some(summary.id), Some(clean))
    );
    let said = format!("This batch was inserted as job {}. Clear staging to start the next batch.", summary.id);
    let again = AppError::from(jobs::start_insert(&w.pool, w.merchant, w.user, "YES").await.unwrap_err());
    assert_eq!(again, AppError::conflict(said.clone()));
    let check = AppError::from(duplicates::start_check(&w.pool, w.merchant, None).await.unwrap_err());
    assert_eq!(check, AppError::conflict(said.clone()));
    let preflight = AppError::from(app::jobs::preflight::run_preflight(&w.pool, w.merchant, None).await.unwrap_err());
    assert_eq!(preflight, AppError::conflict(said));
    let review = duplicates::review_state(&w.pool, w.merchant).await.unwrap();
    assert_eq!(review.batch.map(|b| b.state), Some(app::batch::BatchState::Inserted));
    let jobs_of_merchant: i64 = sqlx::query_scalar("SELECT count(*) FROM codes_import_jobs WHERE merchant_id = $1")
        .bind(w.merchant)
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(jobs_of_merchant, 1, "the refused insert made no job");
}

#[tokio::test]
async fn an_insert_writes_its_codes_in_key_order_and_leaves_no_table_of_its_own_behind() {
    let w = world(3_000).await;
    let job = w.insert().await.summary;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error_message);
    // The staged rows are not in code order ('C-10' < 'C-2'); the job's ids follow the codes.
    let out_of_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT code, lag(code) OVER (ORDER BY id) AS before
                               FROM codes WHERE import_job_id = $1) t
         WHERE before COLLATE \"C\" >= code COLLATE \"C\"",
    )
    .bind(job.id)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, 0);
    let scratch: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'codes_insert_sorted'")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(scratch, 0, "the sorted copy went with the transaction");
}

#[tokio::test]
async fn an_insert_that_fails_midway_leaves_no_code_of_the_job_and_says_why() {
    let w = world(3_000).await;
    let before = w.codes().await;
    // A trigger refuses one row deep into the insert.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.code = 'C-2801' THEN RAISE EXCEPTION 'code % is on the block list', NEW.code; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_one BEFORE INSERT ON codes FOR EACH ROW EXECUTE FUNCTION refuse_one();",
    )
    .execute(&w.pool)
    .await
    .unwrap();

    let job = w.insert().await;
    assert_eq!(job.summary.status, JobStatus::Failed);
    let message = job.summary.error_message.clone().unwrap();
    assert!(
        message.contains("nothing was inserted") && message.contains("code C-2801 is on the block list"),
        "{message}"
    );
    assert_eq!(w.codes_of(job.summary.id).await, 0);
    assert_eq!(w.codes().await, before);
    assert_eq!(job.summary.codes_inserted, None);
    let op = operations::latest(&w.pool, w.merchant, "insert").await.unwrap().unwrap();
    assert_eq!(op.status, "failed");
}

#[tokio::test]
async fn codes_that_land_between_the_preflight_and_the_insert_never_reach_codes_twice() {
    let w = world(2_000).await;
    // Another import lands two clean codes the moment this job passes its pre-flight.
    sqlx::raw_sql(
        "CREATE FUNCTION land_two() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status = 'processing' THEN
                 INSERT INTO codes (merchant_id, code) VALUES (NEW.merchant_id, 'C-1'), (NEW.merchant_id, 'C-2');
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER land_two AFTER UPDATE ON codes_import_jobs FOR EACH ROW EXECUTE FUNCTION land_two();",
    )
    .execute(&w.pool)
    .await
    .unwrap();

    let job = w.insert().await;
    assert_eq!(job.summary.status, JobStatus::Failed);
    let message = job.summary.error_message.clone().unwrap();
    assert!(
        message.starts_with("A code reached production after the pre-flight (Key (code, merchant_id)=(C-")
            && message.contains("already exists), so nothing was inserted"),
        "{message}"
    );
    assert_eq!(w.codes_of(job.summary.id).await, 0);
    let copies: i64 =
        sqlx::query_scalar("SELECT count(*) FROM codes WHERE code IN ('C-1', 'C-2')").fetch_one(&w.pool).await.unwrap();
    assert_eq!(copies, 2, "each code once");

    // The next insert's pre-flight flags them, and it goes through.
    sqlx::raw_sql("DROP TRIGGER land_two ON codes_import_jobs").execute(&w.pool).await.unwrap();
    let clean_before = w.clean().await;
    let retry = w.insert().await;
    assert_eq!(retry.summary.status, JobStatus::Completed, "{:?}", retry.summary.error_message);
    assert_eq!(retry.summary.codes_inserted, Some(clean_before - 2));
    assert_eq!(retry.preflight.new_database_duplicates, Some(2));
}

#[tokio::test]
async fn a_rollback_deletes_the_jobs_codes_once_and_only_for_a_completed_job_without_claims() {
    let w = world(1_000).await;
    let before = w.codes().await;
    let job = w.insert().await.summary;
    assert_eq!(job.status, JobStatus::Completed);

    // A claimed code blocks the rollback, and nothing is deleted.
    sqlx::query("UPDATE codes SET claimed = true WHERE id IN (SELECT id FROM codes WHERE import_job_id = $1 LIMIT 3)")
        .bind(job.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let refused = AppError::from(jobs::rollback_job(&w.pool, job.id, w.user, "DELETE").await.unwrap_err());
    assert_eq!(
        refused,
        AppError::conflict(
            "3 of this job's codes are claimed by customers, so it cannot be rolled back. Nothing was deleted."
        )
    );
    assert_eq!(w.codes_of(job.id).await, job.codes_inserted.unwrap());
    sqlx::query("UPDATE codes SET claimed = false WHERE import_job_id = $1")
        .bind(job.id)
        .execute(&w.pool)
        .await
        .unwrap();

    let refused = AppError::from(jobs::rollback_job(&w.pool, job.id, w.user, "delete it").await.unwrap_err());
    assert_eq!(refused, AppError::invalid("Type DELETE to confirm the rollback."));

    jobs::rollback_job(&w.pool, job.id, w.user, "DELETE").await.unwrap();
    let after = jobs::job_detail(&w.pool, job.id).await.unwrap().unwrap().summary;
    assert_eq!(after.status, JobStatus::RolledBack);
    assert!(after.rolled_back_at.is_some());
    assert_eq!(w.codes().await, before);
    let verification = jobs::verify_job(&w.pool, job.id).await.unwrap();
    assert_eq!((verification.codes_inserted, verification.codes_found), (job.codes_inserted, 0));

    let twice = AppError::from(jobs::rollback_job(&w.pool, job.id, w.user, "DELETE").await.unwrap_err());
    assert_eq!(twice, AppError::conflict("This job was rolled back already."));

    // The rolled-back batch can be inserted again; a failed job cannot be rolled back. (A clean
    // row without a code makes the pre-flight refuse.)
    let batch = app::batch::ssr::latest(&w.pool, w.merchant).await.unwrap().unwrap();
    assert_eq!((batch.state, batch.job_id), (app::batch::BatchState::Checked, None), "rolled back: checked again");
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'imports are paused'; END $$;
         CREATE TRIGGER refuse_all BEFORE INSERT ON codes FOR EACH ROW EXECUTE FUNCTION refuse_all();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let failed = jobs::start_insert(&w.pool, w.merchant, w.user, "YES").await.unwrap();
    let failed = w.finished(failed).await.summary;
    assert_eq!(failed.status, JobStatus::Failed, "a trigger refused the rows");
    let batch = app::batch::ssr::latest(&w.pool, w.merchant).await.unwrap().unwrap();
    assert_eq!((batch.state, batch.job_id), (app::batch::BatchState::Checked, None), "failed: checked again");
    let refused = AppError::from(jobs::rollback_job(&w.pool, failed.id, w.user, "DELETE").await.unwrap_err());
    assert_eq!(refused, AppError::invalid("Only a completed job can be rolled back; this one is failed."));
}

#[tokio::test]
async fn one_insert_per_merchant_at_a_time_and_an_insert_killed_with_its_server_fails_its_job() {
    let w = world(1_000).await;
    let holding = operations::begin(&w.pool, w.merchant, "insert", Some(w.user)).await.unwrap();
    let busy = AppError::from(jobs::start_insert(&w.pool, w.merchant, w.user, "YES").await.unwrap_err());
    let AppError::Busy(message) = busy else { panic!("{busy:?}") };
    assert!(message.starts_with("An insert is running for this merchant (started by ins@example.com"), "{message}");
    let busy = AppError::from(app::staging::ssr::clear_staging(&w.pool, w.merchant, w.user).await.unwrap_err());
    assert!(matches!(busy, AppError::Busy(_)));

    // The holder's server dies mid-insert, its job still `processing`.
    let job = Uuid::new_v4();
    sqlx::query("INSERT INTO codes_import_jobs (id, merchant_id, status) VALUES ($1, $2, 'processing')")
        .bind(job)
        .bind(w.merchant)
        .execute(&w.pool)
        .await
        .unwrap();
    kill_operation_connections(&w.pool).await;
    drop(holding);
    let mut detail = None;
    for _ in 0..100 {
        operations::reap_all(&w.pool).await.unwrap();
        let now = jobs::job_detail(&w.pool, job).await.unwrap().unwrap();
        if now.summary.status != JobStatus::Processing {
            detail = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let detail = detail.expect("the interrupted job is marked failed");
    assert_eq!(detail.summary.status, JobStatus::Failed);
    assert_eq!(detail.summary.error_message.as_deref(), Some(operations::INTERRUPTED_INSERT));

    // Now the merchant is free again.
    assert_eq!(w.insert().await.summary.status, JobStatus::Completed);
}

#[tokio::test]
async fn clearing_staging_deletes_the_merchants_rows_only() {
    let w = world(500).await;
    let other = app::admin::ssr::create_merchant(&w.pool, "Other").await.unwrap().id;
    sqlx::query("INSERT INTO codes_check_temp (merchant_id, row_number, code) VALUES ($1, 1, 'X')")
        .bind(other)
        .execute(&w.pool)
        .await
        .unwrap();
    assert_eq!(app::staging::ssr::clear_staging(&w.pool, w.merchant, w.user).await.unwrap(), 500);
    let left: Vec<Uuid> =
        sqlx::query_scalar("SELECT merchant_id FROM codes_check_temp").fetch_all(&w.pool).await.unwrap();
    assert_eq!(left, [other]);
    let review = duplicates::review_state(&w.pool, w.merchant).await.unwrap();
    // The review says what became of the batch, and nothing of its check: no figures, no stale
    // figures, nothing staged.
    let batch = review.batch.clone().expect("the cleared batch");
    assert_eq!((batch.state, batch.rows_cleared), (app::batch::BatchState::Cleared, Some(500)));
    assert_eq!((review.figures.is_none(), review.check.is_none(), review.staged().is_none()), (true, true, true));
}

#[tokio::test]
async fn an_insert_whose_count_differs_from_the_preflight_rolls_back() {
    let w = world(1_000).await;
    let before = w.codes().await;
    // A trigger silently drops one row: the statement succeeds with one row fewer.
    sqlx::raw_sql(
        "CREATE FUNCTION drop_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.code = 'C-801' THEN RETURN NULL; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER drop_one BEFORE INSERT ON codes FOR EACH ROW EXECUTE FUNCTION drop_one();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let clean = w.clean().await;

    let job = w.insert().await.summary;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error_message.as_deref(),
        Some(
            format!(
                "The insert added {} codes where the pre-flight counted {clean}, so nothing was inserted. \
                 Run the duplicate check and the insert again.",
                clean - 1
            )
            .as_str()
        )
    );
    assert_eq!(w.codes_of(job.id).await, 0);
    assert_eq!(w.codes().await, before);
}

#[tokio::test]
async fn claims_on_other_codes_go_ahead_while_an_insert_runs() {
    let w = world(2_000).await;
    // The insert slows down on one row, so it is surely still running below.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.code = 'C-1003' THEN PERFORM pg_sleep(3); END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER slow_one BEFORE INSERT ON codes FOR EACH ROW EXECUTE FUNCTION slow_one();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let job = jobs::start_insert(&w.pool, w.merchant, w.user, "YES").await.unwrap();
    for _ in 0..200 {
        let status = jobs::job_detail(&w.pool, job).await.unwrap().unwrap().summary.status;
        if status == JobStatus::Processing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A customer claims an existing code and production reads it, each within half a second.
    let mut tx = w.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '500ms'").execute(&mut *tx).await.unwrap();
    sqlx::query("SET LOCAL statement_timeout = '500ms'").execute(&mut *tx).await.unwrap();
    let claimed = sqlx::query("UPDATE codes SET claimed = true WHERE merchant_id = $1 AND code = 'C-7'")
        .bind(w.merchant)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(claimed.rows_affected(), 1);
    let read: i64 = sqlx::query_scalar("SELECT count(*) FROM codes WHERE merchant_id = $1")
        .bind(w.merchant)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let running = jobs::job_detail(&w.pool, job).await.unwrap().unwrap().summary.status;
    assert_eq!(running, JobStatus::Processing, "the insert was still running during the claim");
    assert!(read > 0);

    assert_eq!(w.finished(job).await.summary.status, JobStatus::Completed);
}

#[tokio::test]
async fn an_insert_into_an_adopted_original_codes_with_row_level_security_adds_exactly_the_clean_codes() {
    let db = TestDb::create().await;
    {
        let pool = db.connect().await;
        sqlx::raw_sql(crate::adoption::ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let pool = server::prepare_database(&db.url).await.unwrap();
    let rls: bool = sqlx::query_scalar("SELECT relrowsecurity FROM pg_class WHERE oid = 'codes'::regclass")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(rls, "the original codes keeps its row-level security");
    let merchant = app::admin::ssr::create_merchant(&pool, "Original").await.unwrap().id;
    let user = app::auth::ssr::create_user(
        &pool,
        "orig@example.com",
        "a long password here".into(),
        app::auth::Role::Ops,
        &[],
    )
    .await
    .unwrap();
    // Random codes, as the merchants' are: 600 in production, 2,000 staged of which every
    // 5th is one of those and every 9th repeats an earlier staged code.
    let mut codes = crate::adoption::Codes::new(14);
    let existing: Vec<String> = (0..600).map(|_| codes.code()).collect();
    let mut staged: Vec<String> = Vec::new();
    for n in 0..2_000 {
        let code = match n {
            n if n % 5 == 4 => existing[n / 5 % existing.len()].clone(),
            n if n % 9 == 8 => staged[n / 2].clone(),
            _ => codes.code(),
        };
        staged.push(code);
    }
    sqlx::query("INSERT INTO codes (merchant_id, code, points) SELECT $1, c, 5 FROM unnest($2::text[]) AS c")
        .bind(merchant)
        .bind(&existing)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, points, source_file, source_line)
         SELECT $1, n, c, n % 100, 'a.csv', n + 1 FROM unnest($2::text[]) WITH ORDINALITY AS t(c, n)",
    )
    .bind(merchant)
    .bind(&staged)
    .execute(&pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&pool, merchant).await;
    let w = World { pool, merchant, user, _db: db };
    w.check().await;
    let in_production: std::collections::HashSet<&String> = existing.iter().collect();
    let mut seen = std::collections::HashSet::new();
    let mut clean: Vec<String> =
        staged.iter().filter(|c| seen.insert(*c) && !in_production.contains(c)).cloned().collect();
    clean.sort();
    assert_eq!(w.clean().await, clean.len() as i64);

    let job = w.insert().await.summary;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error_message);
    assert_eq!(job.codes_inserted, Some(clean.len() as i64));
    let landed: Vec<String> =
        sqlx::query_scalar("SELECT code FROM codes WHERE import_job_id = $1 AND merchant_id = $2 ORDER BY code")
            .bind(job.id)
            .bind(w.merchant)
            .fetch_all(&w.pool)
            .await
            .unwrap();
    assert_eq!(landed, clean, "exactly the clean codes, stamped with the job");
    assert_eq!(w.codes().await, (existing.len() + clean.len()) as i64);
    let points: i64 = sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1 AND points IS NULL")
        .bind(job.id)
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(points, 0, "points carried into the original integer column");

    // The unique constraint still guards: a landed code cannot go in again.
    let again = sqlx::query("INSERT INTO codes (merchant_id, code) VALUES ($1, $2)")
        .bind(w.merchant)
        .bind(&clean[0])
        .execute(&w.pool)
        .await
        .unwrap_err();
    assert_eq!(again.as_database_error().and_then(|e| e.constraint()), Some("codes_code_merchant_id_unique"));
}

#[tokio::test]
async fn completed_at_and_rolled_back_at_are_stamped_after_the_last_row_not_at_the_transactions_start() {
    // Seen: completed_at was now() inside the transaction — its start, seconds before the last
    // row at 165 k rows, minutes at 10.9 M. The audit record must hold the commit time.
    let w = world(3_000).await;
    sqlx::raw_sql(
        "CREATE TABLE ci_row_times (t timestamptz NOT NULL);
         CREATE FUNCTION ci_row_time() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO ci_row_times VALUES (clock_timestamp()); RETURN NULL; END $$;
         CREATE TRIGGER ci_row_time AFTER INSERT OR DELETE ON codes FOR EACH ROW EXECUTE FUNCTION ci_row_time();",
    )
    .execute(&w.pool)
    .await
    .unwrap();

    let detail = w.insert().await;
    assert_eq!(detail.summary.status, JobStatus::Completed);
    let last_insert: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(t) FROM ci_row_times").fetch_one(&w.pool).await.unwrap();
    let completed = detail.summary.completed_at.unwrap();
    assert!(completed >= last_insert, "completed_at {completed} is before the last row's {last_insert}");

    jobs::rollback_job(&w.pool, detail.summary.id, w.user, "DELETE").await.unwrap();
    let last_delete: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(t) FROM ci_row_times").fetch_one(&w.pool).await.unwrap();
    let rolled_back = w.finished(detail.summary.id).await.summary.rolled_back_at.unwrap();
    assert!(rolled_back >= last_delete, "rolled_back_at {rolled_back} is before the last deletion's {last_delete}");
}

#[tokio::test]
async fn a_running_jobs_record_carries_its_expected_count_phase_and_clock_from_the_start() {
    // Seen: "Codes to insert –" until the pre-flight passed, and no phase or time at all.
    let w = world(1_000).await;
    let clean = w.clean().await;
    // The insert's pre-flight reads `codes`, so it waits for this lock: the job stays in its
    // first step for as long as the test looks at it.
    let lock = hold_codes(&w.pool).await;
    let job = jobs::start_insert(&w.pool, w.merchant, w.user, "YES").await.unwrap();
    let mut detail = jobs::job_detail(&w.pool, job).await.unwrap().unwrap();
    for _ in 0..200 {
        if detail.progress.as_ref().is_some_and(|p| p.phase.starts_with("Pre-flight")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        detail = jobs::job_detail(&w.pool, job).await.unwrap().unwrap();
    }
    assert_eq!(detail.summary.status, JobStatus::Validating);
    assert_eq!(
        detail.summary.total_codes_to_insert,
        Some(clean),
        "the count the insert expects, before its pre-flight"
    );
    let progress = detail.progress.clone().expect("the running insert's progress");
    assert_eq!(progress.phase, "Pre-flight: re-checking database duplicates and fields");
    assert!(progress.started_at <= detail.summary.created_at, "{progress:?}");
    assert!(progress.now >= progress.started_at, "the database's clock, read with the record");
    assert_eq!(detail.claimed_codes, None, "codes are not counted while the insert runs");

    lock.rollback().await.unwrap();
    let done = w.finished(job).await;
    assert_eq!(done.summary.status, JobStatus::Completed, "{:?}", done.summary.error_message);
    assert_eq!((done.summary.total_codes_to_insert, done.summary.codes_inserted), (Some(clean), Some(clean)));
    assert_eq!(done.progress, None);
    assert_eq!(done.claimed_codes, Some(0));
}

#[tokio::test]
async fn a_completed_jobs_record_counts_its_claimed_codes_and_a_rolled_back_one_what_was_deleted() {
    // Seen: claimed codes were revealed only by a refused rollback, and a rollback's count
    // nowhere.
    let w = world(1_000).await;
    let job = w.insert().await.summary;
    sqlx::query("UPDATE codes SET claimed = true WHERE id IN (SELECT id FROM codes WHERE import_job_id = $1 LIMIT 3)")
        .bind(job.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let detail = jobs::job_detail(&w.pool, job.id).await.unwrap().unwrap();
    assert_eq!((detail.claimed_codes, detail.codes_deleted, detail.progress), (Some(3), None, None));

    sqlx::query("UPDATE codes SET claimed = false WHERE import_job_id = $1")
        .bind(job.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let deleted = jobs::rollback_job(&w.pool, job.id, w.user, "DELETE").await.unwrap();
    assert_eq!(Some(deleted), job.codes_inserted);
    let detail = jobs::job_detail(&w.pool, job.id).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, JobStatus::RolledBack);
    assert_eq!((detail.claimed_codes, detail.codes_deleted), (None, Some(deleted)));
    let verification = jobs::verify_job(&w.pool, job.id).await.unwrap();
    assert!(verification.matches(), "none left is what a rollback leaves: {verification:?}");
    assert_eq!(verification.words(), "Rolled back: 0 codes remain, as expected.");
}
