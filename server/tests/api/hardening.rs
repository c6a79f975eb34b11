//! Availability and the edges of the error policy, probed as an attacker would: parallel
//! sign-ins, oversized inputs, declared sizes that would wrap. Each test is a finding that
//! failed before its fix.

use std::time::{Duration, Instant};

use app::{auth::Role, csv::FileReport, staging::FileManifest};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::helpers::{spawn_app, ServerProcess, TestApp, TestDb, PASSWORD};

/// The real server binary on a database of its own, as a process whose memory can be read.
struct Isolated {
    server: ServerProcess,
    addr: String,
    pool: sqlx::PgPool,
    _db: TestDb,
}

impl Isolated {
    async fn start() -> Self {
        let db = TestDb::unique();
        let server = ServerProcess::start(&db.url).await;
        let pool = db.connect().await;
        Self { addr: server.addr.clone(), server, pool, _db: db }
    }

    fn memory_mb(&self, key: &str) -> f64 {
        self.server.memory_mb(key)
    }

    async fn login(&self, email: &str, password: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("http://{}/api/login", self.addr))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn forty_parallel_anonymous_sign_ins_keep_the_servers_memory_bounded() {
    // Seen: 40 parallel sign-ins took a fresh server from 26 to 808 MiB (19 MiB per Argon2id
    // hash, nothing bounding how many ran at once).
    let server = Isolated::start().await;
    // Warm up: the first sign-in builds what every later one shares.
    server.login("warm@example.com", "not the password").await;
    let before = server.memory_mb("VmRSS:");

    let answers = join_all((0..40).map(|i| {
        let server = &server;
        async move { server.login(&format!("nobody-{i}@example.com"), "a guess that is wrong").await }
    }))
    .await;

    let peak = server.memory_mb("VmHWM:");
    eprintln!("40 parallel sign-ins: resident {before:.0} MiB before, peak {peak:.0} MiB; answers {answers:?}");
    assert!(answers.iter().all(|s| [401, 429, 503].contains(s)), "{answers:?}");
    // At most 4 hashes at once (76 MiB), with room for the requests themselves.
    assert!(peak - before < 160.0, "memory grew from {before:.0} MiB to a peak of {peak:.0} MiB");
}

#[tokio::test]
async fn fifteen_parallel_attempts_on_one_email_are_checked_at_most_five_times() {
    // Seen: 15 parallel attempts (14 wrong, 1 right) were all checked and the right one signed
    // in, though the limit is 5 failures.
    let server = Isolated::start().await;
    let email = format!("target-{}@example.com", Uuid::new_v4().simple());
    app::auth::ssr::create_user(&server.pool, &email, PASSWORD.to_owned(), Role::Ops, &[]).await.unwrap();

    let answers = join_all((0..15).map(|i| {
        let (server, email) = (&server, &email);
        async move { server.login(email, if i == 14 { PASSWORD } else { "wrong password, guessed" }).await }
    }))
    .await;

    let checked = answers.iter().filter(|s| [200, 401, 403].contains(*s)).count();
    assert!(checked <= 5, "{checked} attempts were checked: {answers:?}");
    assert!(answers.iter().filter(|s| **s == 429).count() >= 10, "{answers:?}");
}

#[tokio::test]
async fn forty_parallel_attempts_from_one_address_are_checked_at_most_thirty_times() {
    let server = Isolated::start().await;

    let answers = join_all((0..40).map(|i| {
        let server = &server;
        async move { server.login(&format!("spray-{i}@example.com"), "one password for everyone").await }
    }))
    .await;

    let checked = answers.iter().filter(|s| **s == 401).count();
    assert!(checked <= 30, "{checked} attempts were checked: {answers:?}");
    assert!(answers.iter().filter(|s| **s == 429).count() >= 10, "{answers:?}");
}

#[tokio::test]
async fn an_email_over_254_bytes_is_refused_with_400_before_the_database() {
    // Seen: an email over ~2.7 kB made the throttle's insert fail: 500, counted for nobody.
    let app = spawn_app().await;
    let email = format!("{}@example.com", "a".repeat(3000));
    let response = app.call(&app.client, "login", &[("email", email), ("password", "whatever".into())]).await;
    assert_eq!(response.status(), 400, "{}", response.text().await.unwrap());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_throttle").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_disabled_account_answers_a_wrong_password_like_any_wrong_password() {
    // Seen: 403 "disabled" to the right password and 401 to a wrong one — but the wrong one
    // must read exactly as for any account, and the right one is counted before it is told.
    let app = spawn_app().await;
    let user = app.user(Role::Ops, &[]).await;
    sqlx::query("UPDATE users SET disabled = true WHERE id = $1").bind(user.id).execute(&app.pool).await.unwrap();
    let login = |email: String, password: &str| {
        let form = [("email", email), ("password", password.to_owned())];
        let client = TestApp::new_client();
        let url = app.url("/api/login");
        async move {
            let response = client.post(url).form(&form).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    let wrong = login(user.email.clone(), "not the password at all").await;
    let unknown = login("nobody-here@example.com".into(), "not the password at all").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.0, 401);
    let right = login(user.email.clone(), PASSWORD).await;
    assert_eq!(right.0, 403, "{}", right.1);
    let failures: i32 = sqlx::query_scalar("SELECT failures FROM login_throttle WHERE key = $1")
        .bind(format!("email:{}", user.email))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 2, "the right password of a disabled account counts as an attempt");
}

fn manifest(name: &str, rows: i64, size: i64) -> FileManifest {
    FileManifest {
        name: name.into(),
        size,
        checksum: format!("sum-{name}"),
        rows,
        report: FileReport::default(),
        restage: false,
    }
}

#[tokio::test]
async fn declared_rows_and_sizes_are_capped_and_their_sums_never_wrap() {
    // Seen: two files of 2^62 rows panicked in debug and wrapped in release; 10^15 rows taken.
    let app = spawn_app().await;
    let merchant = app.merchant("Limits").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    let start = |files: Vec<FileManifest>| {
        let request = admin.post(app.url("/api/start-upload")).json(&serde_json::json!({
            "merchant": merchant, "files": files
        }));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    for (files, what) in [
        (vec![manifest("a.csv", 1 << 62, 10), manifest("b.csv", 1 << 62, 10)], "rows"),
        (vec![manifest("a.csv", 1_000_000_000_000_000, 10)], "rows"),
        (vec![manifest("a.csv", 60_000_000, 10), manifest("b.csv", 60_000_000, 10)], "rows"),
        (vec![manifest("a.csv", 10, 21 << 30)], "GiB"),
        (vec![manifest("a.csv", 10, i64::MAX), manifest("b.csv", 10, i64::MAX)], "GiB"),
    ] {
        let (status, body) = start(files).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(what), "{body}");
    }
    let uploads: i64 = sqlx::query_scalar("SELECT count(*) FROM uploads").fetch_one(&app.pool).await.unwrap();
    assert_eq!(uploads, 0);
    let (status, body) = start(vec![manifest("ok.csv", 100_000_000, 20 << 30)]).await;
    assert_eq!(status, 200, "the limits themselves are allowed: {body}");
}

#[tokio::test]
async fn every_answer_has_a_strict_content_security_policy_and_pages_run_no_script_it_does_not_name() {
    // Seen: no Content-Security-Policy at all; the shell had an inline script of its own.
    let app = spawn_app().await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    for (client, path) in [(&app.client, "/login"), (&ops, "/upload"), (&ops, "/jobs"), (&app.client, "/healthz")] {
        let response = client.get(app.url(path)).send().await.unwrap();
        let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        let scripts = policy.split(';').find(|d| d.trim().starts_with("script-src ")).unwrap().trim().to_owned();
        assert!(scripts.starts_with("script-src 'self' 'wasm-unsafe-eval'"), "{path}: {policy}");
        assert!(!scripts.contains("unsafe-inline") && !scripts.contains("'unsafe-eval'"), "{path}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("object-src 'none'"), "{policy}");
        let body = response.text().await.unwrap();
        for script in body.split("<script").skip(1) {
            let (tag, rest) = script.split_once('>').unwrap();
            let content = rest.split("</script>").next().unwrap();
            if tag.contains("src=") {
                assert!(content.trim().is_empty(), "{path}: <script{tag}> has content");
                continue;
            }
            // Leptos streams its resources' data in inline scripts carrying the response's
            // nonce; the policy names that nonce and no other inline script can run.
            let nonce = tag.split("nonce=\"").nth(1).and_then(|n| n.split('"').next());
            let nonce = nonce.unwrap_or_else(|| panic!("{path}: an inline script without the nonce: <script{tag}>"));
            assert!(scripts.contains(&format!("'nonce-{nonce}'")), "{path}: {nonce} is not in {scripts}");
        }
    }
}

#[tokio::test]
async fn paths_with_dot_segments_are_refused_before_the_gates() {
    // Seen: `/api/../upload` gave an anonymous client the page shell, `/pkg/../admin` a
    // merchant admin the admin shell. Sent raw: HTTP clients resolve dot segments themselves.
    let app = spawn_app().await;
    for path in ["/api/../upload", "/pkg/../admin", "/api/%2e%2e/upload", "/pkg/%2E%2E/admin", "/./upload"] {
        let answer = raw_get(app.addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {}", answer.lines().next().unwrap_or_default());
        assert!(!answer.contains("<html"), "{path}: a page was served");
    }
    assert!(raw_get(app.addr, "/login").await.starts_with("HTTP/1.1 200"), "a plain path is served");
}

/// The answer to `GET path`, written on the socket exactly as given.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn client_errors_get_client_statuses_with_one_json_error_body() {
    // Seen: bad arguments answered 500 with the decoder's message; oversized bodies 500;
    // "no such job" 400.
    let app = spawn_app().await;
    let merchant = app.merchant("Errors").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;

    let bad = app.call(&admin, "get-job", &[("job", "not-a-uuid".into())]).await;
    assert_eq!(bad.status(), 400);
    let error: app::error::AppError = bad.json().await.unwrap();
    assert!(matches!(error, app::error::AppError::Invalid(_)), "{error:?}");
    let missing = app.call(&admin, "verify-job", &[]).await;
    assert_eq!(missing.status(), 400);

    let huge = admin
        .post(app.url("/api/create-merchant"))
        .form(&[("name", "x".repeat(2 * 1024 * 1024))])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert!(matches!(huge.json::<app::error::AppError>().await.unwrap(), app::error::AppError::TooLarge(_)));

    let unknown = app.call(&admin, "get-job", &[("job", Uuid::new_v4().to_string())]).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<app::error::AppError>().await.unwrap(), app::error::AppError::not_found("job"));

    let anonymous = TestApp::new_client()
        .post(app.url(&app::staging::chunk_path(Uuid::new_v4(), 0, 0)))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<app::error::AppError>().await.unwrap(), app::error::AppError::Unauthorized);
}

#[tokio::test]
async fn downloads_that_are_never_read_hold_a_bounded_number_of_connections_for_a_bounded_time() {
    // Seen: 24 downloads that never read held 24 COPY connections (5 → 27 in
    // pg_stat_activity); about 95 would have exhausted PostgreSQL for everyone.
    let server = Isolated::start().await;
    let merchant = app::admin::ssr::create_merchant(&server.pool, "Reports").await.unwrap().id;
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, sku_name, source_file, source_line)
         SELECT $1, n, 'CODE' || lpad(n::text, 12, '0'), 'A name long enough to fill the pipes quickly', 'a.csv', n + 1
         FROM generate_series(1, 400000) AS n",
    )
    .bind(merchant)
    .execute(&server.pool)
    .await
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let email = format!("reader-{}@example.com", Uuid::new_v4().simple());
        app::auth::ssr::create_user(&server.pool, &email, PASSWORD.into(), Role::MerchantAdmin, &[merchant])
            .await
            .unwrap();
        let client = TestApp::new_client();
        let signed_in = client
            .post(format!("http://{}/api/login", server.addr))
            .form(&[("email", email.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert!(signed_in.status().is_success() || signed_in.status().is_redirection());
        clients.push(client);
    }
    let url = format!("http://{}/api/merchants/{merchant}/reports/full-report.csv", server.addr);
    let copies = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT%'
               AND state <> 'idle'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap()
    };

    // 24 downloads, 12 per user, none of them ever read.
    let mut unread = Vec::new();
    for i in 0..24 {
        unread.push(clients[i % 2].get(&url).send().await.unwrap());
    }
    let statuses: Vec<u16> = unread.iter().map(|r| r.status().as_u16()).collect();
    let started = statuses.iter().filter(|s| **s == 200).count();
    assert!(started <= 4, "{started} downloads streamed at once: {statuses:?}");
    assert!(statuses.iter().all(|s| [200, 429, 503].contains(s)), "{statuses:?}");
    assert!(unread.iter().any(|r| r.status() == 429 && r.headers().contains_key("retry-after")));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(copies().await <= 4, "COPY connections past the bound");

    // Clients that stop reading release their connections within a bounded time.
    let deadline = Instant::now() + Duration::from_secs(30);
    while copies().await > 0 {
        assert!(Instant::now() < deadline, "stalled downloads still hold their connections");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let again = clients[0].get(&url).send().await.unwrap();
    assert_eq!(again.status(), 200, "the slots are free again");
    drop(unread);
}
