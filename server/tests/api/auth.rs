use std::{io::Write, process::Stdio};

use app::{
    auth::{CurrentUser, Role},
    error::AppError,
};

use crate::helpers::{serve, spawn_app, TestApp, PASSWORD};

async fn signed_in_user(app: &TestApp, client: &reqwest::Client) -> Option<CurrentUser> {
    let response = app.call(client, "signed-in-user", &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn login(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> (u16, String) {
    let response = app.call(client, "login", &[("email", email.to_owned()), ("password", password.to_owned())]).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn signing_in_sets_a_hardened_session_cookie_and_shows_who_is_signed_in() {
    let app = spawn_app().await;
    let merchant = app.merchant("NBD").await;
    let admin = app.user(Role::MerchantAdmin, &[merchant]).await;
    let client = TestApp::new_client();

    let response = app
        .call(&client, "login", &[("email", admin.email.to_uppercase()), ("password", admin.password.clone())])
        .await;

    assert!(response.status().is_success() || response.status().is_redirection());
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("code_import_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Expires=") || cookie.contains("Max-Age="), "{cookie}");
    assert!(!cookie.contains(&admin.password));
    let me = signed_in_user(&app, &client).await.expect("signed in");
    assert_eq!(me.email, admin.email);
    assert_eq!(me.role, Role::MerchantAdmin);
    assert_eq!(me.merchants.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), vec!["NBD"]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let ops = app.user(Role::Ops, &[]).await;
    let client = TestApp::new_client();

    let wrong_password = login(&app, &client, &ops.email, "not the password at all").await;
    let unknown_email = login(&app, &client, "nobody@example.com", PASSWORD).await;

    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password, unknown_email);
    let error: AppError = serde_json::from_str(&wrong_password.1).unwrap();
    assert_eq!(error, AppError::BadCredentials);
    assert_eq!(error.to_string(), "The email or password is incorrect.");
    assert_eq!(signed_in_user(&app, &client).await, None);
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_their_session_stops_working() {
    let app = spawn_app().await;
    let merchant = app.merchant("NBD").await;
    let admin = app.user(Role::MerchantAdmin, &[merchant]).await;
    let client = app.sign_in(&admin).await;
    assert!(signed_in_user(&app, &client).await.is_some());

    sqlx::query("UPDATE users SET disabled = true WHERE id = $1").bind(admin.id).execute(&app.pool).await.unwrap();

    assert_eq!(signed_in_user(&app, &client).await, None, "the open session died");
    assert_eq!(app.call(&client, "list-jobs", &[]).await.status(), 401);
    let (status, body) = login(&app, &TestApp::new_client(), &admin.email, &admin.password).await;
    assert_eq!(status, 403);
    assert!(body.contains("disabled"), "{body}");
}

#[tokio::test]
async fn a_session_survives_a_server_restart_and_dies_on_logout() {
    let app = spawn_app().await;
    let ops = app.user(Role::Ops, &[]).await;
    let client = TestApp::new_client();
    let response =
        app.call(&client, "login", &[("email", ops.email.clone()), ("password", ops.password.clone())]).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();

    // A new server process on the same database knows the session.
    let restarted = serve(&app.db, app.pool.clone()).await;
    let me = reqwest::Client::new()
        .post(format!("http://{restarted}/api/signed-in-user"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.json::<Option<CurrentUser>>().await.unwrap().map(|u| u.email), Some(ops.email.clone()));

    let logout = app.call(&client, "logout", &[]).await;
    assert!(logout.status().is_success() || logout.status().is_redirection());

    // Replaying the old cookie gets nothing: the session is gone from the server.
    let replay = reqwest::Client::new()
        .post(format!("http://{restarted}/api/list-jobs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    let ops = app.user(Role::Ops, &[]).await;
    let client = TestApp::new_client();
    for _ in 0..5 {
        assert_eq!(login(&app, &client, &ops.email, "wrong password, again").await.0, 401);
    }

    let (status, body) = login(&app, &client, &ops.email, &ops.password).await;

    assert_eq!(status, 429, "even the right password waits: {body}");
    assert!(body.contains("Too many failed sign-ins"), "{body}");
    // An unknown email locks the same way, so a lock says nothing about who exists.
    for _ in 0..5 {
        login(&app, &client, "nobody@example.com", "whatever it is").await;
    }
    assert_eq!(login(&app, &client, "nobody@example.com", "whatever it is").await.0, 429);
}

#[tokio::test]
async fn a_cross_origin_state_changing_request_is_refused() {
    let app = spawn_app().await;
    let ops = app.user(Role::Ops, &[]).await;
    let client = app.sign_in(&ops).await;

    let forged = client
        .post(app.url("/api/create-merchant"))
        .header("origin", "https://evil.example")
        .form(&[("name", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let cross_site = client
        .post(app.url("/api/create-merchant"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "Forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let merchants: i64 = sqlx::query_scalar("SELECT count(*) FROM merchants").fetch_one(&app.pool).await.unwrap();
    assert_eq!(merchants, 0, "nothing was created");

    let same_origin = client
        .post(app.url("/api/create-merchant"))
        .header("origin", format!("http://{}", app.addr))
        .header("sec-fetch-site", "same-origin")
        .form(&[("name", "Real")])
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
}

#[tokio::test]
async fn pages_send_an_anonymous_visitor_to_sign_in_and_back() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/jobs?status=failed")).send().await.unwrap();

    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=/jobs%3Fstatus%3Dfailed");
    let login_page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login_page.status(), 200);
    assert!(login_page.text().await.unwrap().contains("Sign in"));
}

#[tokio::test]
async fn the_create_user_command_makes_an_account_that_can_sign_in() {
    let app = spawn_app().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["create-user", "--email", "First.Ops@Example.com", "--role", "ops"])
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("created ops first.ops@example.com"), "{stdout}");
    assert!(!stdout.contains(PASSWORD));

    let client = TestApp::new_client();
    let (status, _) = login(&app, &client, "first.ops@example.com", PASSWORD).await;
    assert!(status < 400);
    assert_eq!(signed_in_user(&app, &client).await.unwrap().role, Role::Ops);
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(&app.pool).await.unwrap();
    assert!(stored.starts_with("$argon2id$"), "stored as an Argon2id hash");
}

/// Many servers run in this one process, as the tests run them: building a router while
/// another renders a page must not leave that page unfinished (finding the app's routes
/// renders the app with resource loads suppressed process-wide, and a page whose resource
/// first ran meanwhile waited forever — a test hung so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_finishes_while_other_routers_of_the_process_are_built() {
    let app = spawn_app().await;
    let config = server::Config {
        database_url: app.db.url.clone(),
        addr: app.addr,
        site_root: server::DEFAULT_SITE_ROOT.to_owned(),
        public_origin: None,
        metrics_addr: None,
    };
    let state = app::state::AppState { pool: app.pool.clone(), leptos_options: server::leptos_options(&config) };
    let building = tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            drop(server::router(state.clone(), &config));
        }
    });
    let pages = (0..200).map(|_| async {
        let page = async { app.client.get(app.url("/login")).send().await.unwrap().text().await.unwrap() };
        tokio::time::timeout(std::time::Duration::from_secs(10), page).await
    });
    let pages = futures_util::future::join_all(pages).await;
    let unfinished = pages.iter().filter(|page| page.is_err()).count();
    assert_eq!(unfinished, 0, "pages that never finished, of {}", pages.len());
    assert!(pages.into_iter().flatten().all(|page| page.contains("Sign in")));
    building.await.unwrap();
}
