//! The duplicate check against an independent, brute-force computation of the flags.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use app::{
    duplicates::{ssr, CheckFigures, DuplicateStats, ReviewView, RowFilter, RowStatus},
    error::AppError,
    operations::{ssr as operations, Operation},
};
use uuid::Uuid;

use crate::helpers::{kill_operation_connections, TestDb};

/// A deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Staged rows (merchant, row_number, code) and production codes, with chosen duplicate rates,
/// codes that differ only in case or in spaces, and several merchants sharing codes.
fn generate(rng: &mut Rng, merchants: &[Uuid]) -> (Vec<(Uuid, i64, String)>, Vec<(Uuid, String)>) {
    let variants = |n: u64| match n % 4 {
        0 => format!("CODE-{n}"),
        1 => format!("code-{n}"),
        2 => format!(" CODE-{n}"),
        _ => format!("CODE-{n} "),
    };
    let mut staged = Vec::new();
    let mut production = HashSet::new();
    for &merchant in merchants {
        for _ in 0..300 {
            production.insert((merchant, variants(rng.below(2_000))));
        }
        for row in 1..=1_500 {
            staged.push((merchant, row, variants(rng.below(2_000))));
        }
    }
    (staged, production.into_iter().collect())
}

/// The flags by definition: the 2nd, 3rd, … occurrence per (merchant, code) in row order, and
/// whether (code, merchant) is in production.
fn brute_force(staged: &[(Uuid, i64, String)], production: &[(Uuid, String)]) -> HashMap<(Uuid, i64), (bool, bool)> {
    let production: HashSet<&(Uuid, String)> = production.iter().collect();
    let mut sorted: Vec<&(Uuid, i64, String)> = staged.iter().collect();
    sorted.sort_by_key(|(merchant, row, _)| (*merchant, *row));
    let mut seen = HashSet::new();
    sorted
        .into_iter()
        .map(|(merchant, row, code)| {
            let internal = !seen.insert((*merchant, code.clone()));
            let existing = production.contains(&(*merchant, code.clone()));
            ((*merchant, *row), (internal, existing))
        })
        .collect()
}

async fn flags(pool: &sqlx::PgPool) -> HashMap<(Uuid, i64), (bool, bool)> {
    sqlx::query_as::<_, (Uuid, i64, bool, bool)>(
        "SELECT merchant_id, row_number, internal_dup, existing_dup FROM codes_check_temp",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(m, r, i, e)| ((m, r), (i, e)))
    .collect()
}

async fn insert(pool: &sqlx::PgPool, staged: &[(Uuid, i64, String)], production: &[(Uuid, String)]) {
    let (merchants, rows, codes): (Vec<Uuid>, Vec<i64>, Vec<String>) =
        staged.iter().cloned().fold((vec![], vec![], vec![]), |(mut a, mut b, mut c), (m, r, code)| {
            a.push(m);
            b.push(r);
            c.push(code);
            (a, b, c)
        });
    // Files of 500 rows each, as uploads name them.
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
         SELECT m, r, c, 'file-' || ((r - 1) / 500) || '.csv', (r - 1) % 500 + 2
         FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS t(m, r, c)",
    )
    .bind(&merchants)
    .bind(rows)
    .bind(codes)
    .execute(pool)
    .await
    .unwrap();
    for merchant in merchants.iter().collect::<std::collections::BTreeSet<_>>() {
        crate::helpers::register_staged(pool, *merchant).await;
    }
    let (merchants, codes): (Vec<Uuid>, Vec<String>) = production.iter().cloned().unzip();
    sqlx::query(
        "INSERT INTO codes (merchant_id, code) SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(merchants)
    .bind(codes)
    .execute(pool)
    .await
    .unwrap();
}

async fn check_all(pool: &sqlx::PgPool, merchants: &[Uuid]) {
    let mut conn = pool.acquire().await.unwrap();
    for &merchant in merchants {
        ssr::mark_duplicates(&mut conn, merchant, None).await.unwrap();
    }
}

#[tokio::test]
async fn every_rows_flags_equal_a_brute_force_computation_and_a_rerun_changes_nothing() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let (staged, production) = generate(&mut Rng(42), &merchants);
    insert(&pool, &staged, &production).await;

    check_all(&pool, &merchants).await;

    let expected = brute_force(&staged, &production);
    assert_eq!(flags(&pool).await, expected);
    let both = expected.values().filter(|(i, e)| *i && *e).count();
    assert!(both > 0 && expected.values().any(|f| *f == (false, false)), "every status is present");
    let mut conn = pool.acquire().await.unwrap();
    let stats = ssr::stats(&mut conn, merchants[0]).await.unwrap();
    let mine: Vec<&(bool, bool)> = expected.iter().filter(|((m, _), _)| *m == merchants[0]).map(|(_, f)| f).collect();
    assert_eq!(
        stats,
        DuplicateStats {
            total_rows: mine.len() as i64,
            internal_duplicates: mine.iter().filter(|f| f.0).count() as i64,
            database_duplicates: mine.iter().filter(|f| f.1).count() as i64,
            both: mine.iter().filter(|f| f.0 && f.1).count() as i64,
            clean_count: mine.iter().filter(|f| !f.0 && !f.1).count() as i64,
        }
    );
    assert_eq!(ssr::mark_duplicates(&mut conn, merchants[0], None).await.unwrap(), 0, "a rerun writes nothing");
    assert_eq!(flags(&pool).await, expected);
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn a_rerun_after_more_rows_and_production_changes_gives_the_right_flags() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
    let mut rng = Rng(7);
    let (mut staged, mut production) = generate(&mut rng, &merchants);
    insert(&pool, &staged, &production).await;
    check_all(&pool, &merchants).await;

    // More rows staged, codes added to and removed from production.
    let more: Vec<(Uuid, i64, String)> =
        (1..=200).map(|i| (merchants[0], 1_500 + i, format!("CODE-{}", rng.below(2_000)))).collect();
    let added: Vec<(Uuid, String)> = (0..100).map(|_| (merchants[1], format!("CODE-{}", rng.below(2_000)))).collect();
    insert(&pool, &more, &added).await;
    let removed = production.split_off(production.len() - 50);
    for (merchant, code) in &removed {
        sqlx::query("DELETE FROM codes WHERE merchant_id = $1 AND code = $2")
            .bind(merchant)
            .bind(code)
            .execute(&pool)
            .await
            .unwrap();
    }
    staged.extend(more);
    let production: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT merchant_id, code FROM codes").fetch_all(&pool).await.unwrap();

    check_all(&pool, &merchants).await;

    assert_eq!(flags(&pool).await, brute_force(&staged, &production));
    pool.close().await;
}

/// Merchants that exist (operations name them), with their staged rows and production codes.
async fn merchants(pool: &sqlx::PgPool, n: usize) -> Vec<Uuid> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(app::admin::ssr::create_merchant(pool, &format!("Merchant {i}")).await.unwrap().id);
    }
    out
}

/// Waits for the merchant's latest check to stop running.
pub(crate) async fn finished_check(pool: &sqlx::PgPool, merchant: Uuid) -> Operation {
    for _ in 0..600 {
        let op = operations::latest(pool, merchant, "check").await.unwrap().expect("a check was started");
        if !op.is_running() {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the check did not finish within 30 s");
}

/// Polls `condition` every 50 ms until it holds, 30 s at most (the caller asserts what it needs).
async fn until(condition: impl AsyncFn() -> bool) {
    for _ in 0..600 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stats_of<'a>(flags: impl Iterator<Item = &'a (bool, bool)>) -> DuplicateStats {
    let flags: Vec<&(bool, bool)> = flags.collect();
    DuplicateStats {
        total_rows: flags.len() as i64,
        internal_duplicates: flags.iter().filter(|f| f.0).count() as i64,
        database_duplicates: flags.iter().filter(|f| f.1).count() as i64,
        both: flags.iter().filter(|f| f.0 && f.1).count() as i64,
        clean_count: flags.iter().filter(|f| !f.0 && !f.1).count() as i64,
    }
}

#[tokio::test]
async fn a_background_check_stores_figures_per_file_that_add_up_and_match_brute_force() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 2).await;
    let (staged, production) = generate(&mut Rng(3), &merchants);
    insert(&pool, &staged, &production).await;

    let started = ssr::start_check(&pool, merchants[0], None).await.unwrap();
    assert_eq!((started.kind.as_str(), started.merchant_id), ("check", merchants[0]));
    let done = finished_check(&pool, merchants[0]).await;
    assert_eq!((done.id, done.status.as_str()), (started.id, "completed"), "{:?}", done.error_message);

    let review = ssr::review_state(&pool, merchants[0]).await.unwrap();
    let figures = review.figures.expect("figures are stored");
    assert_eq!(review.stale, None);
    let expected = brute_force(&staged, &production);
    let mine = |file: Option<i64>| {
        stats_of(
            expected
                .iter()
                .filter(|((m, row), _)| *m == merchants[0] && file.is_none_or(|f| (row - 1) / 500 == f))
                .map(|(_, flags)| flags),
        )
    };
    assert_eq!(figures.overall, mine(None));
    let names: Vec<&str> = figures.files.iter().map(|f| f.source_file.as_str()).collect();
    assert_eq!(names, ["file-0.csv", "file-1.csv", "file-2.csv"], "files in row order");
    for (i, file) in figures.files.iter().enumerate() {
        assert_eq!(file.stats, mine(Some(i as i64)), "{}", file.source_file);
    }
    // The other merchant was not checked.
    assert!(ssr::review_state(&pool, merchants[1]).await.unwrap().figures.is_none());
    assert!(flags(&pool).await.iter().all(|((m, _), f)| *m == merchants[0] || *f == (false, false)));
    pool.close().await;
}

#[tokio::test]
async fn a_second_operation_for_a_merchant_is_told_what_runs_while_another_merchant_goes_ahead() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    // A second server process: its own pool.
    let other_process = db.connect().await;
    let merchants = merchants(&pool, 2).await;
    let (staged, production) = generate(&mut Rng(5), &merchants);
    insert(&pool, &staged, &production).await;
    let user =
        app::auth::ssr::create_user(&pool, "ann@example.com", "a long password here".into(), app::auth::Role::Ops, &[])
            .await
            .unwrap();

    // A check holds merchant 0 in one process …
    let holding = operations::begin(&pool, merchants[0], "check", Some(user)).await.unwrap();
    // … so a check from the other process is refused, naming it.
    let refused = AppError::from(ssr::start_check(&other_process, merchants[0], None).await.unwrap_err());
    let AppError::Busy(message) = refused else { panic!("expected busy, got {refused:?}") };
    assert!(message.starts_with("A duplicate check is running") && message.contains("ann@example.com"), "{message}");
    let refused =
        AppError::from(app::jobs::preflight::run_preflight(&other_process, merchants[0], None).await.unwrap_err());
    assert!(matches!(refused, AppError::Busy(_)), "{refused:?}");

    // Merchant 1 checks meanwhile, to the end.
    ssr::start_check(&other_process, merchants[1], None).await.unwrap();
    assert_eq!(finished_check(&other_process, merchants[1]).await.status, "completed");

    holding.finish(Ok(serde_json::json!(null))).await;
    ssr::start_check(&other_process, merchants[0], None).await.unwrap();
    assert_eq!(finished_check(&pool, merchants[0]).await.status, "completed");
    assert_eq!(flags(&pool).await, brute_force(&staged, &production));
    other_process.close().await;
    pool.close().await;
}

#[tokio::test]
async fn a_check_whose_server_died_is_marked_failed_and_a_rerun_finishes_it() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 1).await;
    let (staged, production) = generate(&mut Rng(9), &merchants);
    insert(&pool, &staged, &production).await;

    // A check half done (some flags written), then its server's connection is killed.
    let dying = operations::begin(&pool, merchants[0], "check", None).await.unwrap();
    sqlx::query("UPDATE codes_check_temp SET internal_dup = true WHERE row_number % 7 = 0")
        .execute(&pool)
        .await
        .unwrap();
    let dead = dying.id;
    kill_operation_connections(&pool).await;
    drop(dying);

    // The restarted server marks it failed, with the reason.
    let mut failed = None;
    for _ in 0..100 {
        operations::reap_all(&pool).await.unwrap();
        let op = operations::latest(&pool, merchants[0], "check").await.unwrap().unwrap();
        if !op.is_running() {
            failed = Some(op);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = failed.expect("the interrupted check is marked failed");
    assert_eq!((failed.id, failed.status.as_str()), (dead, "failed"));
    assert_eq!(failed.error_message.as_deref(), Some(operations::INTERRUPTED));

    ssr::start_check(&pool, merchants[0], None).await.unwrap();
    assert_eq!(finished_check(&pool, merchants[0]).await.status, "completed");
    assert_eq!(flags(&pool).await, brute_force(&staged, &production));
    pool.close().await;
}

#[tokio::test]
async fn the_preflight_finds_codes_that_reached_production_after_the_check() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 1).await;
    let merchant = merchants[0];
    let (staged, production) = generate(&mut Rng(11), &merchants);
    insert(&pool, &staged, &production).await;

    let before = app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap();
    assert_eq!(before.errors, ["Run the duplicate check first."]);

    ssr::start_check(&pool, merchant, None).await.unwrap();
    finished_check(&pool, merchant).await;
    let clean_before = ssr::review_state(&pool, merchant).await.unwrap().figures.unwrap().overall.clean_count;

    // Another import lands three of the clean codes after the check.
    let landed: Vec<(i64, String)> = sqlx::query_as(
        "SELECT row_number, code FROM codes_check_temp
         WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup ORDER BY row_number LIMIT 3",
    )
    .bind(merchant)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (_, code) in &landed {
        sqlx::query("INSERT INTO codes (merchant_id, code) VALUES ($1, $2)")
            .bind(merchant)
            .bind(code)
            .execute(&pool)
            .await
            .unwrap();
    }

    let preflight = app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap();
    assert_eq!(preflight.errors, Vec::<String>::new());
    // Every staged row with one of those codes is now a database duplicate, later
    // occurrences (internal duplicates) included.
    let rows_with_landed_codes =
        staged.iter().filter(|(m, _, code)| *m == merchant && landed.iter().any(|(_, c)| c == code)).count() as i64;
    assert!(rows_with_landed_codes >= 3);
    assert_eq!(preflight.new_database_duplicates, rows_with_landed_codes);
    assert_eq!(preflight.clean_count, clean_before - 3);
    assert!(preflight.ready());
    for (row, _) in &landed {
        let existing: bool =
            sqlx::query_scalar("SELECT existing_dup FROM codes_check_temp WHERE merchant_id = $1 AND row_number = $2")
                .bind(merchant)
                .bind(row)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(existing, "row {row} is flagged now");
    }
    // The review shows the figures after the pre-flight.
    let review = ssr::review_state(&pool, merchant).await.unwrap();
    assert_eq!(review.figures.unwrap().overall.clean_count, clean_before - 3);
    // Nothing new: a second pre-flight finds nothing more, and the figures it records (those
    // it found, not counted again) are the rows' as they are.
    assert_eq!(app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap().new_database_duplicates, 0);
    let latest = operations::latest(&pool, merchant, "preflight").await.unwrap().unwrap();
    let figures_by = app::batch::ssr::latest(&pool, merchant).await.unwrap().unwrap().figures_operation;
    assert_eq!(figures_by, Some(latest.id));
    let counted = ssr::figures(&mut *pool.acquire().await.unwrap(), merchant).await.unwrap();
    assert_eq!(ssr::current_figures(&pool, merchant).await.unwrap(), Some(counted));

    // Rows staged after the check: the pre-flight says to check again, the review that it is stale.
    insert(&pool, &[(merchant, 1_501, "LATE-1".into())], &[]).await;
    let stale = app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap();
    assert!(!stale.ready());
    assert_eq!(stale.errors, ["Rows were staged or removed after the last duplicate check: run the check again."]);
    let review = ssr::review_state(&pool, merchant).await.unwrap();
    let reason = review.stale.expect("the review says the figures are stale");
    assert!(reason.starts_with("1 rows were staged after this check (at "), "{reason}");
    pool.close().await;
}

#[tokio::test]
async fn the_preview_filters_by_status_and_pages_through_every_row_once() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 2).await;
    let (staged, production) = generate(&mut Rng(13), &merchants);
    insert(&pool, &staged, &production).await;
    check_all(&pool, &merchants).await;
    let expected = brute_force(&staged, &production);

    for status in RowStatus::ALL.into_iter().map(Some).chain([None]) {
        let mut seen = Vec::new();
        let filter = status.map_or(RowFilter::All, RowFilter::Only);
        let mut view = ReviewView { filter, page: 1, ..ReviewView::default() };
        loop {
            let page = ssr::preview(&pool, merchants[1], &view, 50).await.unwrap();
            assert!(page.rows.len() <= 50);
            for row in &page.rows {
                assert!(status.is_none_or(|s| row.status() == s), "{:?} in {status:?}", row.status());
                assert_eq!(expected[&(merchants[1], row.row_number)], (row.internal_dup, row.existing_dup));
                assert_eq!(
                    row.source_file.as_deref(),
                    Some(format!("file-{}.csv", (row.row_number - 1) / 500).as_str())
                );
            }
            seen.extend(page.rows.iter().map(|r| r.row_number));
            match page.next_after {
                Some(next) => view = ReviewView { page: page.page + 1, after: Some(next), ..view },
                None => break,
            }
        }
        let mut wanted: Vec<i64> = expected
            .iter()
            .filter(|((m, _), f)| *m == merchants[1] && status.is_none_or(|s| RowStatus::of(f.0, f.1) == s))
            .map(|((_, row), _)| *row)
            .collect();
        wanted.sort();
        assert!(!wanted.is_empty());
        assert_eq!(seen, wanted, "{status:?}: every row once, in order");
    }
    pool.close().await;
}

#[test]
fn figures_add_files_up() {
    let file = |total_rows, internal_duplicates, database_duplicates, both| app::duplicates::FileStats {
        source_file: "f.csv".into(),
        stats: DuplicateStats {
            total_rows,
            internal_duplicates,
            database_duplicates,
            both,
            clean_count: total_rows - internal_duplicates - database_duplicates + both,
        },
    };
    let figures = CheckFigures::from_files(vec![file(10, 2, 3, 1), file(5, 0, 5, 0)], Some(15));
    assert_eq!(
        figures.overall,
        DuplicateStats { total_rows: 15, internal_duplicates: 2, database_duplicates: 8, both: 1, clean_count: 6 }
    );
    assert_eq!(figures.overall.percent(6), "40.0 %");
}

#[tokio::test]
async fn review_polls_during_a_running_check_open_no_connection_and_change_nothing() {
    // Seen: every open review tab made the server open about two connections a second while an
    // operation ran (each read "reaped", taking a connection out of the pool).
    use app::auth::Role;
    let app = crate::helpers::spawn_app().await;
    let merchant = app.merchant("Polled").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
         SELECT $1, n, 'P-' || n, 'p.csv', n + 1 FROM generate_series(1, 2000) AS n",
    )
    .bind(merchant)
    .execute(&app.pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&app.pool, merchant).await;
    // The check waits on production for as long as the test holds it.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE codes IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.unwrap();
    let started = app.call(&admin, "start-check", &[("merchant", merchant.to_string())]).await;
    assert_eq!(started.status(), 200);
    let form = [("merchant", merchant.to_string())];
    let poll = || app.call(&admin, "load-review", &form);
    // The pool grows to the size steady polling needs; from then on a poll that opened a
    // connection (one taken out of the pool, as reaping did) shows as a new backend.
    for _ in 0..20 {
        assert_eq!(poll().await.status(), 200);
    }
    // Sessions PostgreSQL has started for this database (its statistics; a backend reports
    // its start within a second).
    let sessions = || async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut conn = app.pool.acquire().await.unwrap();
        sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    };
    let sessions_before = sessions().await;
    let updated_before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM merchant_operations WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_one(&app.pool)
            .await
            .unwrap();

    for _ in 0..40 {
        let review: app::duplicates::ReviewState = poll().await.json().await.unwrap();
        assert!(review.check.is_some_and(|op| op.is_running()));
    }

    let opened = sessions().await - sessions_before;
    // Reaping took a connection out of the pool on every poll (40 or more sessions here). The
    // pool may still open a few on its way to its steady size, never more than its bound (16).
    assert!(opened < 16, "40 polls started {opened} database sessions");
    let updated: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT updated_at FROM merchant_operations WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(updated, updated_before, "the polls wrote nothing");
    holder.rollback().await.unwrap();
    crate::helpers::wait_idle(&app.pool, merchant).await;
}

#[tokio::test]
async fn an_orphaned_check_reads_as_failed_at_once_and_is_marked_so_at_the_next_operation() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 1).await;
    let dying = operations::begin(&pool, merchants[0], "check", None).await.unwrap();
    kill_operation_connections(&pool).await;
    drop(dying);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let read = operations::latest(&pool, merchants[0], "check").await.unwrap().unwrap();
    assert_eq!((read.status.as_str(), read.error_message.as_deref()), ("failed", Some(operations::INTERRUPTED)));
    assert!(operations::running(&pool, merchants[0]).await.unwrap().is_none());
    let stored: String = sqlx::query_scalar("SELECT status FROM merchant_operations WHERE id = $1")
        .bind(read.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, "running", "a read changes nothing");

    let next = operations::begin(&pool, merchants[0], "clear", None).await.unwrap();
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT status, error_message FROM merchant_operations WHERE id = $1")
            .bind(read.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((stored.0.as_str(), stored.1.as_deref()), ("failed", Some(operations::INTERRUPTED)));
    next.finish(Ok(serde_json::json!({}))).await;
    pool.close().await;
}

#[tokio::test]
async fn a_check_that_ends_while_the_review_is_read_is_never_shown_ended_without_its_figures() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchants = merchants(&pool, 1).await;
    let merchant = merchants[0];
    let (staged, production) = generate(&mut Rng(11), &merchants);
    insert(&pool, &staged, &production).await;
    // The check waits on production for as long as the test holds it.
    let holder = crate::helpers::hold_codes(&pool).await;
    ssr::start_check(&pool, merchant, None).await.unwrap();
    // The review's read of the latest check joins `users` (who started it); the batch's read
    // does not. Holding `users` stops the review at its read of the check, whichever of its
    // reads that is, and the check ends in that window: the window between two reads of a
    // poll, held open.
    let mut users = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").execute(&mut *users).await.unwrap();
    let review = tokio::spawn({
        let pool = pool.clone();
        async move { ssr::review_state(&pool, merchant).await }
    });
    let waiting = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'users'::regclass AND NOT granted)",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let status = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM merchant_operations WHERE merchant_id = $1 AND kind = 'check'",
        )
        .bind(merchant)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    until(&waiting).await;
    assert!(waiting().await, "the review did not reach its read of the check");
    assert_eq!(status().await, "running");
    holder.commit().await.unwrap();
    // (Not `finished_check`: its read joins `users`, which the test holds.)
    until(async || status().await != "running").await;
    assert_eq!(status().await, "completed");
    users.commit().await.unwrap();

    let review = review.await.unwrap().unwrap();
    let check = review.check.expect("the review shows the check");
    assert_eq!(check.status.as_str(), "completed");
    let figures = review.figures.expect("a check shown ended comes with its figures");
    assert!(review.checked_at.is_some(), "and the time it ended");
    let expected = brute_force(&staged, &production);
    assert_eq!(figures.overall, stats_of(expected.values()));
    pool.close().await;
}

#[tokio::test]
async fn the_check_gives_the_planner_staging_as_it_is_now() {
    // Through the page nothing else analyses staging before the check (autovacuum may be off,
    // and when on it comes a minute or more after a bulk load): without statistics the planner
    // sized every hash table of the check for a table of unknown content, and the check took
    // 121 s at full scale where it takes 49 s with them.
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE codes_check_temp SET (autovacuum_enabled = false)").execute(&pool).await.unwrap();
    let merchants = merchants(&pool, 1).await;
    let (staged, production) = generate(&mut Rng(13), &merchants);
    insert(&pool, &staged, &production).await;
    let estimate = || async {
        sqlx::query_scalar::<_, f32>("SELECT reltuples FROM pg_class WHERE oid = 'codes_check_temp'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let rows = staged.len() as f32;
    assert!(estimate().await < rows / 2.0, "staged, never analysed: {}", estimate().await);

    ssr::start_check(&pool, merchants[0], None).await.unwrap();
    assert_eq!(finished_check(&pool, merchants[0]).await.status, "completed");
    assert_eq!(estimate().await, rows, "the planner's count of staged rows after the check");
    pool.close().await;
}
