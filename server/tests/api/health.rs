use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_are_200_while_the_database_answers() {
    let app = spawn_app().await;
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), body);
    }
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone_while_healthz_says_the_process_answers() {
    let app = spawn_app().await;
    // Terminate the database under the running server.
    let name = app.db.name.clone();
    drop(app.db);
    let response = reqwest::get(format!("http://{}/readyz", app.addr)).await.unwrap();
    assert_eq!(response.status(), 503, "database {name} was dropped");
    assert_eq!(response.text().await.unwrap(), "database unavailable");
    let live = reqwest::get(format!("http://{}/healthz", app.addr)).await.unwrap();
    assert_eq!(live.status(), 200, "the process answers");
}

#[tokio::test]
async fn readyz_is_503_while_a_migration_of_the_binary_is_not_applied() {
    let app = spawn_app().await;
    sqlx::query(
        "UPDATE _sqlx_migrations SET success = false WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap(), "migrations not applied");
}
