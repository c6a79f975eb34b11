use app::jobs::JobSummary;
use uuid::Uuid;

use crate::helpers::spawn_app;

async fn list_jobs(app: &crate::helpers::TestApp) -> Vec<JobSummary> {
    let response = app.client.post(app.url("/api/list-jobs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_jobs_server_function_returns_the_jobs_in_the_database_newest_first() {
    let app = spawn_app().await;
    assert!(list_jobs(&app).await.is_empty(), "a new database has no jobs");

    let merchant = Uuid::new_v4();
    let (older, newer) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO codes_import_jobs
             (id, merchant_id, status, total_codes_to_insert, codes_inserted, created_at,
              completed_at, source_info)
         VALUES ($1, $3, 'completed', 1200, 1200, now() - interval '2 days', now() - interval '2 days',
                 '{\"files\": [{\"name\": \"a.csv\", \"size\": 10}, {\"name\": \"b.csv\", \"size\": 20}]}'),
                ($2, $3, 'failed', 50, NULL, now() - interval '1 hour', NULL, NULL)",
    )
    .bind(older)
    .bind(newer)
    .bind(merchant)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE codes_import_jobs SET error_message = 'count mismatch' WHERE id = $1")
        .bind(newer)
        .execute(&app.pool)
        .await
        .unwrap();

    let jobs = list_jobs(&app).await;

    let ids: Vec<Uuid> = jobs.iter().map(|job| job.id).collect();
    assert_eq!(ids, vec![newer, older]);
    assert_eq!(jobs[0].status, "failed");
    assert_eq!(jobs[0].error_message.as_deref(), Some("count mismatch"));
    assert_eq!(jobs[0].codes_inserted, None);
    assert!(jobs[0].files.is_empty());
    assert_eq!(jobs[1].merchant_id, merchant);
    assert_eq!(jobs[1].codes_inserted, Some(1200));
    assert_eq!(jobs[1].files, vec!["a.csv".to_owned(), "b.csv".to_owned()]);
}

#[tokio::test]
async fn the_jobs_page_is_rendered_on_the_server_with_the_empty_state() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/jobs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("No imports yet"), "{html}");
    assert!(html.contains("/pkg/frontend.js"), "the page loads the WASM bundle");

    let missing = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
