use app::{
    auth::Role,
    jobs::{JobDetail, JobFilter, JobStatus, JobSummary},
};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, TestDb};

async fn list_jobs(app: &TestApp, client: &reqwest::Client, merchant: Option<Uuid>) -> Vec<JobSummary> {
    let form: Vec<(&str, String)> = merchant.map(|m| ("merchant", m.to_string())).into_iter().collect();
    let response = app.call(client, "list-jobs", &form).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn insert_job(app: &TestApp, merchant: Uuid, status: &str, age: &str, source_info: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO codes_import_jobs
             (id, merchant_id, status, total_codes_to_insert, codes_inserted, created_at, source_info)
         VALUES ($1, $2, $3, 1200, CASE WHEN $3 = 'completed' THEN 1200 END, now() - $4::interval, $5::jsonb)",
    )
    .bind(id)
    .bind(merchant)
    .bind(status)
    .bind(age)
    .bind(source_info)
    .execute(&app.pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn the_jobs_server_function_returns_the_jobs_in_the_database_newest_first() {
    let app = spawn_app().await;
    let merchant = app.merchant("NBD").await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    assert!(list_jobs(&app, &ops, None).await.is_empty(), "a new database has no jobs");

    let older = insert_job(
        &app,
        merchant,
        "completed",
        "2 days",
        Some(r#"{"files": [{"name": "a.csv", "size": 10}, {"name": "b.csv"}]}"#),
    )
    .await;
    let newer = insert_job(&app, merchant, "failed", "1 hour", None).await;
    sqlx::query("UPDATE codes_import_jobs SET error_message = 'count mismatch' WHERE id = $1")
        .bind(newer)
        .execute(&app.pool)
        .await
        .unwrap();

    let jobs = list_jobs(&app, &ops, None).await;

    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![newer, older]);
    assert_eq!(jobs[0].status, JobStatus::Failed);
    assert_eq!(jobs[0].error_message.as_deref(), Some("count mismatch"));
    assert_eq!(jobs[0].codes_inserted, None);
    assert!(jobs[0].files.is_empty());
    assert_eq!(jobs[1].merchant_id, merchant);
    assert_eq!(jobs[1].merchant_name.as_deref(), Some("NBD"));
    assert_eq!(jobs[1].codes_inserted, Some(1200));
    assert_eq!(jobs[1].files, vec!["a.csv".to_owned(), "b.csv".to_owned()]);
}

#[tokio::test]
async fn a_merchant_admin_lists_only_their_own_merchants_jobs() {
    let app = spawn_app().await;
    let (a, b) = (app.merchant("A").await, app.merchant("B").await);
    let job_a = insert_job(&app, a, "completed", "1 day", None).await;
    let job_b = insert_job(&app, b, "completed", "1 day", None).await;
    let admin_a = app.sign_in(&app.user(Role::MerchantAdmin, &[a]).await).await;

    let seen: Vec<Uuid> = list_jobs(&app, &admin_a, None).await.iter().map(|j| j.id).collect();
    assert_eq!(seen, vec![job_a]);

    let refused = app.call(&admin_a, "list-jobs", &[("merchant", b.to_string())]).await;
    assert_eq!(refused.status(), 404, "another merchant is answered as one that does not exist");
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    let all: Vec<Uuid> = list_jobs(&app, &ops, None).await.iter().map(|j| j.id).collect();
    assert!(all.contains(&job_a) && all.contains(&job_b));
}

#[tokio::test]
async fn the_jobs_page_is_rendered_on_the_server_with_the_empty_state() {
    let app = spawn_app().await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    let response = ops.get(app.url("/jobs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains("No imports yet"), "{html}");
    assert!(html.contains("/pkg/frontend.js"), "the page loads the WASM bundle");

    let missing = ops.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_job_page_reads_a_completed_jobs_claimed_codes_before_any_rollback_is_tried() {
    let app = spawn_app().await;
    let merchant = app.merchant("Claims").await;
    let job = insert_job(&app, merchant, "completed", "1 hour", None).await;
    sqlx::query(
        "INSERT INTO codes (merchant_id, code, import_job_id, claimed)
         SELECT $1, 'K-' || n, $2, n <= 3 FROM generate_series(1, 1200) AS n",
    )
    .bind(merchant)
    .bind(job)
    .execute(&app.pool)
    .await
    .unwrap();
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;

    let response = app.call(&admin, "get-job", &[("job", job.to_string())]).await;
    assert_eq!(response.status(), 200);
    let detail: JobDetail = response.json().await.unwrap();
    assert_eq!((detail.summary.status, detail.claimed_codes), (JobStatus::Completed, Some(3)));

    let refused =
        app.call(&admin, "rollback-job", &[("job", job.to_string()), ("confirmation", "DELETE".into())]).await;
    assert_eq!(refused.status(), 409);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1")
        .bind(job)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 1200, "nothing was deleted");
}

/// The `codes_import_jobs` of a fresh database: the migrations' own, or the original system's
/// that they adopt.
async fn jobs_table(original: bool) -> (TestDb, sqlx::PgPool) {
    let db = TestDb::create().await;
    if original {
        let pool = db.connect().await;
        sqlx::raw_sql(crate::adoption::ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let pool = server::prepare_database(&db.url).await.unwrap();
    (db, pool)
}

#[tokio::test]
async fn every_job_status_round_trips_through_the_status_constraint_of_both_schemas() {
    for original in [false, true] {
        let (_db, pool) = jobs_table(original).await;
        // The constraint allows exactly the statuses the code knows.
        let definition: String = sqlx::query_scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = 'codes_import_jobs'::regclass AND conname = 'codes_import_jobs_status_check'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let allowed: Vec<&str> = definition.split('\'').skip(1).step_by(2).collect();
        let mut known: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        let mut sorted = allowed.clone();
        sorted.sort_unstable();
        known.sort_unstable();
        assert_eq!(sorted, known, "original schema: {original}; {definition}");

        // A row per status reads back as that status (the merchant's lock held, so a job in
        // progress reads as in progress, not as one whose server died).
        let merchant = app::admin::ssr::create_merchant(&pool, "Statuses").await.unwrap().id;
        let holding = app::operations::ssr::begin(&pool, merchant, "insert", None).await.unwrap();
        for status in JobStatus::ALL {
            sqlx::query("INSERT INTO codes_import_jobs (id, merchant_id, status) VALUES ($1, $2, $3)")
                .bind(Uuid::new_v4())
                .bind(merchant)
                .bind(status.as_str())
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{status:?} refused (original schema: {original}): {e}"));
            let filter = JobFilter { status: Some(status), ..JobFilter::default() };
            let read = app::jobs::ssr::list_jobs(&pool, Some(&[merchant]), &filter, 10).await.unwrap();
            assert_eq!(read.iter().map(|j| j.status).collect::<Vec<_>>(), [status], "original schema: {original}");
        }
        let refused =
            sqlx::query("INSERT INTO codes_import_jobs (id, merchant_id, status) VALUES ($1, $2, 'complete')")
                .bind(Uuid::new_v4())
                .bind(merchant)
                .execute(&pool)
                .await
                .unwrap_err();
        assert_eq!(refused.as_database_error().and_then(|e| e.constraint()), Some("codes_import_jobs_status_check"));
        holding.finish(Ok(serde_json::json!({}))).await;
    }
}
