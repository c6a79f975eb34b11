use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_is_200_while_the_database_answers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn healthz_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    // Terminate the database under the running server.
    let name = app.db.name.clone();
    drop(app.db);
    let response = reqwest::get(format!("http://{}/healthz", app.addr)).await.unwrap();
    assert_eq!(response.status(), 503, "database {name} was dropped");
    assert_eq!(response.text().await.unwrap(), "database unavailable");
}
