use app::{auth::Role, jobs::JobSummary};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

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
    assert_eq!(jobs[0].status, "failed");
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
