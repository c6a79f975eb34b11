//! Operating the real binary: stopped with SIGTERM as an orchestrator stops it (a running
//! insert ends failed with the shutdown as its reason and nothing of it in production; an
//! upload resumes on the next process), its JSON logs, and its metrics.

use std::time::Duration;

use app::{
    auth::Role,
    batch::BatchState,
    csv::FileReport,
    operations::ssr::{SHUT_DOWN, SHUT_DOWN_INSERT},
    staging::{chunk_path, FileManifest, UploadState, UploadStatus},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{hold_codes, register_staged, wait_idle, wire_chunk, ServerProcess, TestDb, PASSWORD};

/// A merchant and its admin in `pool`'s database; the admin's email.
async fn merchant_and_admin(pool: &PgPool) -> (Uuid, String) {
    let merchant = app::admin::ssr::create_merchant(pool, "Stopped").await.unwrap().id;
    let email = format!("stopped-{}@example.com", Uuid::new_v4().simple());
    app::auth::ssr::create_user(pool, &email, PASSWORD.into(), Role::MerchantAdmin, &[merchant]).await.unwrap();
    (merchant, email)
}

/// Stages `rows` rows for `merchant` by SQL, the code of row `n` being the SQL expression
/// `code` of `n`, and checks them.
async fn staged_and_checked(pool: &PgPool, merchant: Uuid, rows: i64, code: &str) {
    let statement = format!(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
         SELECT $1, n, {code}, 'f.csv', n + 1 FROM generate_series(1, $2) AS n"
    );
    sqlx::query(sqlx::AssertSqlSafe(statement)).bind(merchant).bind(rows).execute(pool).await.unwrap();
    register_staged(pool, merchant).await;
    app::duplicates::ssr::start_check(pool, merchant, None).await.unwrap();
    wait_idle(pool, merchant).await;
}

#[tokio::test]
async fn sigterm_during_an_insert_fails_its_job_with_the_shutdown_as_reason_and_leaves_nothing_in_production() {
    let db = TestDb::unique();
    let mut server = ServerProcess::start(&db.url).await;
    let pool = db.connect().await;
    let (merchant, email) = merchant_and_admin(&pool).await;
    staged_and_checked(&pool, merchant, 5000, "'T' || lpad(n::text, 10, '0')").await;

    // The insert waits on production while the server is told to stop.
    let client = server.sign_in(&email).await;
    let lock = hold_codes(&pool).await;
    let started = client
        .post(format!("http://{}/api/start-insert", server.addr))
        .form(&[("merchant", merchant.to_string()), ("confirmation", "YES".into())])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let job: Uuid = started.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = app::operations::ssr::running(&pool, merchant).await.unwrap().expect("the insert runs");
    let exit = server.terminate();
    assert!(exit.success(), "a clean exit: {exit}");
    lock.rollback().await.unwrap();

    // Right after the exit, with no other process to reap it: the job and the operation say why.
    let (status, message): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_message FROM codes_import_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), message.as_deref()), ("failed", Some(SHUT_DOWN_INSERT)));
    let (status, message): (String, Option<String>) =
        sqlx::query_as("SELECT status, error_message FROM merchant_operations WHERE id = $1")
            .bind(running.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), message.as_deref()), ("failed", Some(SHUT_DOWN)));
    let landed: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&pool).await.unwrap();
    assert_eq!(landed, 0, "nothing of the insert in production");
    let batch = app::batch::ssr::latest(&pool, merchant).await.unwrap().unwrap();
    assert_eq!(batch.state, BatchState::Checked, "the batch can be inserted again");
}

#[tokio::test]
async fn sigterm_during_an_upload_loses_nothing_and_the_next_process_resumes_it() {
    let db = TestDb::unique();
    let mut server = ServerProcess::start(&db.url).await;
    let pool = db.connect().await;
    let (merchant, email) = merchant_and_admin(&pool).await;
    let client = server.sign_in(&email).await;
    let file = FileManifest {
        name: "big.csv".into(),
        size: 1_000,
        checksum: "fnv64w:big".into(),
        rows: 200,
        report: FileReport::default(),
        restage: false,
    };
    let chunk = |first: u64| -> Vec<u8> {
        wire_chunk((first..first + 100).map(|n| format!("{},{merchant},S{n:06},,,,,,\n", n + 1)).collect::<String>())
    };
    let start = |addr: String| {
        let client = client.clone();
        let file = file.clone();
        async move {
            let response = client
                .post(format!("http://{addr}/api/start-upload"))
                .json(&serde_json::json!({ "merchant": merchant, "files": [file] }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<UploadState>().await.unwrap()
        }
    };
    let upload = start(server.addr.clone()).await;
    let sent = client.post(format!("http://{}{}", server.addr, chunk_path(upload.id, 0, 0))).body(chunk(1)).send();
    assert_eq!(sent.await.unwrap().status(), 200);
    assert!(server.terminate().success());

    // The next process (sessions live in the database: the same cookie signs the user in).
    let server = ServerProcess::start(&db.url).await;
    let resumed = start(server.addr.clone()).await;
    assert_eq!((resumed.id, resumed.files[0].next_seq, resumed.rows_received()), (upload.id, 1, 100));
    let sent = client.post(format!("http://{}{}", server.addr, chunk_path(upload.id, 0, 1))).body(chunk(101)).send();
    assert_eq!(sent.await.unwrap().status(), 200);
    let done = client
        .post(format!("http://{}/api/finish-upload", server.addr))
        .form(&[("upload", upload.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.json::<UploadState>().await.unwrap().status, UploadStatus::Completed);
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT code) FROM codes_check_temp WHERE merchant_id = $1")
            .bind(merchant)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (200, 200));
}

#[tokio::test]
async fn with_log_format_json_every_line_of_a_journey_is_json_carrying_its_request_or_operation_id() {
    let db = TestDb::unique();
    let dir = std::env::temp_dir().join(format!("code-import-log-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server =
        ServerProcess::start_with(&db.url, &[("LOG_FORMAT", "json"), ("RUST_LOG", "info,sqlx=warn")], log).await;
    let pool = db.connect().await;
    let (merchant, email) = merchant_and_admin(&pool).await;
    let client = server.sign_in(&email).await;

    // Upload, finish, check: requests, and an operation in the background.
    let file = FileManifest {
        name: "j.csv".into(),
        size: 100,
        checksum: "fnv64w:j".into(),
        rows: 3,
        report: FileReport::default(),
        restage: false,
    };
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let started = client
        .post(url("/api/start-upload"))
        .header("x-request-id", "the-callers-id")
        .json(&serde_json::json!({ "merchant": merchant, "files": [file] }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.headers()["x-request-id"], "the-callers-id", "the id is echoed");
    let upload: UploadState = started.json().await.unwrap();
    let rows = format!("2,{merchant},J1,,,,,,\n3,{merchant},J2,,,,,,\n4,{merchant},J3,,,,,,\n");
    let sent = client.post(url(&chunk_path(upload.id, 0, 0))).body(wire_chunk(rows)).send().await.unwrap();
    assert!(sent.headers().contains_key("x-request-id"), "every answer names its request");
    let form = [("upload", upload.id.to_string())];
    assert_eq!(client.post(url("/api/finish-upload")).form(&form).send().await.unwrap().status(), 200);
    let form = [("merchant", merchant.to_string())];
    assert_eq!(client.post(url("/api/start-check")).form(&form).send().await.unwrap().status(), 200);
    wait_idle(&pool, merchant).await;
    assert!(server.terminate().success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let message = |line: &serde_json::Value| line["fields"]["message"].as_str().unwrap_or_default().to_owned();
    // The journey's lines: those between start-up ("listening") and the shutdown.
    let first = lines.iter().position(|l| message(l) == "listening").expect("a listening line") + 1;
    let last = lines.iter().position(|l| message(l) == "shutting down").expect("a shutting-down line");
    let journey = &lines[first..last];
    assert!(journey.len() >= 4, "{text}");
    // The outermost span of a line: its request's, or its operation's.
    let outer = |line: &serde_json::Value| line["spans"].get(0).cloned().unwrap_or_default();
    for line in journey {
        let span = outer(line);
        let id = span["request_id"].as_str().or(span["operation_id"].as_str());
        assert!(id.is_some_and(|id| !id.is_empty()), "a line without its request or operation: {line}");
    }
    let said =
        |what: &str| journey.iter().find(|l| message(l) == what).unwrap_or_else(|| panic!("no {what:?} in {text}"));
    assert_eq!(outer(said("upload started"))["request_id"], "the-callers-id");
    let finished = said("operation finished");
    assert_eq!(outer(finished)["kind"], "duplicate check");
    assert_eq!(outer(finished)["merchant"], merchant.to_string());
    assert!(finished["fields"]["seconds"].is_number());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `/metrics` parsed as Prometheus does: each sample's value by name and labels.
async fn scrape(addr: &str) -> Vec<prometheus_parse::Sample> {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text").samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A server process on a database of its own, serving its metrics; their address.
async fn with_metrics() -> (TestDb, ServerProcess, String) {
    let db = TestDb::unique();
    let metrics_addr = format!("127.0.0.1:{}", crate::helpers::free_port());
    let env = [("METRICS_ADDR", metrics_addr.as_str()), ("RUST_LOG", "error")];
    let server = ServerProcess::start_with(&db.url, &env, std::process::Stdio::null()).await;
    (db, server, metrics_addr)
}

#[tokio::test]
async fn metrics_count_exactly_an_uploads_rows_and_a_journeys_operations_and_only_on_their_own_address() {
    let (db, server, metrics_addr) = with_metrics().await;
    let pool = db.connect().await;
    let (merchant, email) = merchant_and_admin(&pool).await;
    let client = server.sign_in(&email).await;
    let url = |path: &str| format!("http://{}{path}", server.addr);

    let file = FileManifest {
        name: "m.csv".into(),
        size: 10_000,
        checksum: "fnv64w:m".into(),
        rows: 250,
        report: FileReport::default(),
        restage: false,
    };
    let started =
        client.post(url("/api/start-upload")).json(&serde_json::json!({ "merchant": merchant, "files": [file] }));
    let upload: UploadState = started.send().await.unwrap().json().await.unwrap();
    let chunk = |first: u64, rows: u64| -> Vec<u8> {
        wire_chunk((first..first + rows).map(|n| format!("{},{merchant},M{n:06},,,,,,\n", n + 1)).collect::<String>())
    };
    let mut bytes = 0;
    for (seq, (first, rows)) in [(1, 200), (201, 50)].into_iter().enumerate() {
        let body = chunk(first, rows);
        bytes += body.len();
        let path = chunk_path(upload.id, 0, seq as i32);
        assert_eq!(client.post(url(&path)).body(body).send().await.unwrap().status(), 200);
    }
    // A chunk sent again is received, not stored again.
    let again = client.post(url(&chunk_path(upload.id, 0, 1))).body(chunk(201, 50)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    bytes += chunk(201, 50).len();
    let form = [("upload", upload.id.to_string())];
    assert_eq!(client.post(url("/api/finish-upload")).form(&form).send().await.unwrap().status(), 200);
    let form = [("merchant", merchant.to_string())];
    assert_eq!(client.post(url("/api/start-check")).form(&form).send().await.unwrap().status(), 200);
    wait_idle(&pool, merchant).await;
    let form = [("merchant", merchant.to_string()), ("confirmation", "YES".to_owned())];
    assert_eq!(client.post(url("/api/start-insert")).form(&form).send().await.unwrap().status(), 200);
    wait_idle(&pool, merchant).await;

    let samples = scrape(&metrics_addr).await;
    assert_eq!(value(&samples, "upload_rows_stored_total", &[]), 250.0);
    assert_eq!(value(&samples, "upload_chunks_stored_total", &[]), 2.0);
    assert_eq!(value(&samples, "upload_bytes_received_total", &[]), bytes as f64);
    for kind in ["duplicate check", "insert"] {
        assert_eq!(value(&samples, "operations_started_total", &[("kind", kind)]), 1.0, "{kind}");
        assert_eq!(value(&samples, "operations_finished_total", &[("kind", kind), ("status", "completed")]), 1.0);
        assert_eq!(value(&samples, "operation_seconds_count", &[("kind", kind)]), 1.0);
        assert!(value(&samples, "operation_rows_per_second", &[("kind", kind)]) > 0.0);
    }
    let route = [("route", "/api/uploads/:id/files/:id/chunks/:id"), ("status", "200")];
    assert_eq!(value(&samples, "http_requests_total", &route), 3.0);
    assert_eq!(value(&samples, "upload_chunk_seconds_count", &[]), 3.0);
    assert_eq!(value(&samples, "operation_rows_done", &[("kind", "insert")]), 250.0);
    assert_eq!(value(&samples, "operations_running", &[("kind", "insert")]), 0.0);
    assert!(value(&samples, "db_pool_connections", &[("state", "open")]) >= 1.0);
    let waited = value(&samples, "db_pool_acquire_wait_seconds", &[]);
    assert!(waited < server::metrics::ACQUIRE_PROBE.as_secs_f64(), "an idle pool keeps no request waiting: {waited}");
    assert_eq!(value(&samples, "password_hashes_in_flight", &[]), 0.0);

    // A wrong password counts as a failed sign-in.
    let wrong = login_status(&server.addr, &email, "not the password").await;
    assert_eq!(wrong, 401);
    assert_eq!(value(&scrape(&metrics_addr).await, "sign_in_failures_total", &[]), 1.0);

    // Not on the app's address.
    let on_app = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = on_app.get(url("/metrics")).send().await.unwrap();
    assert_ne!(answer.status(), 200, "the app's address serves no metrics");
}

/// The status a sign-in with `password` gets.
async fn login_status(addr: &str, email: &str, password: &str) -> u16 {
    let client = crate::helpers::TestApp::new_client();
    let form = [("email", email), ("password", password)];
    client.post(format!("http://{addr}/api/login")).form(&form).send().await.unwrap().status().as_u16()
}

/// A code that sorts after every md5-drawn code: production's trigger holds the insert on it.
const LAST_CODE: &str = "ZZZZZZZZZZZZ";

#[tokio::test]
async fn while_an_insert_runs_the_codes_written_so_far_show_in_the_metrics_and_on_its_job() {
    let (db, server, metrics_addr) = with_metrics().await;
    let pool = db.connect().await;
    let (merchant, email) = merchant_and_admin(&pool).await;
    // 40,000 random codes; production's trigger waits on the one that sorts last, which the
    // insert writes last, until the test lets it go.
    let code = format!("CASE WHEN n = 777 THEN '{LAST_CODE}' ELSE upper(substr(md5(n::text), 1, 12)) END");
    staged_and_checked(&pool, merchant, 40_000, &code).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION wait_for_the_test() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_advisory_lock(4242); PERFORM pg_advisory_unlock(4242); RETURN NEW; END $$;
         CREATE TRIGGER wait_on_the_last_code BEFORE INSERT ON codes
         FOR EACH ROW WHEN (NEW.code = '{LAST_CODE}') EXECUTE FUNCTION wait_for_the_test();"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let mut gate = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(4242)").execute(&mut *gate).await.unwrap();

    let client = server.sign_in(&email).await;
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let form = [("merchant", merchant.to_string()), ("confirmation", "YES".to_owned())];
    let started = client.post(url("/api/start-insert")).form(&form).send().await.unwrap();
    assert_eq!(started.status(), 200);
    let job: Uuid = started.json().await.unwrap();

    // The insert stops at its last slice, waiting on the test (on its advisory lock): what it
    // wrote before shows, as rows and as words.
    for tries in 0.. {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 4242)",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(tries < 300, "the insert never reached its last code");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let samples = scrape(&metrics_addr).await;
    let written = value(&samples, "operation_rows_done", &[("kind", "insert")]);
    assert!(written > 0.0 && written < 40_000.0, "part of the insert is written: {written}");
    assert_eq!(value(&samples, "operations_running", &[("kind", "insert")]), 1.0);
    assert!(value(&samples, "operation_rows_per_second", &[("kind", "insert")]) > 0.0);
    let detail: app::jobs::JobDetail =
        client.post(url("/api/get-job")).form(&[("job", job.to_string())]).send().await.unwrap().json().await.unwrap();
    let progress = detail.progress.expect("the job runs");
    let words = format!("Inserting: {} of 40,000 codes written", app::components::format::format_count(written as i64));
    assert_eq!(progress.phase, words);
    // The same number for the page's bar.
    assert_eq!(progress.rows_done, Some(written as i64));
    let landed: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&pool).await.unwrap();
    assert_eq!(landed, 0, "nothing is visible before the insert commits");

    sqlx::query("SELECT pg_advisory_unlock(4242)").execute(&mut *gate).await.unwrap();
    wait_idle(&pool, merchant).await;
    let samples = scrape(&metrics_addr).await;
    assert_eq!(value(&samples, "operation_rows_done", &[("kind", "insert")]), 40_000.0);
    assert_eq!(value(&samples, "operations_running", &[("kind", "insert")]), 0.0);
    let landed: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&pool).await.unwrap();
    assert_eq!(landed, 40_000);
}

#[tokio::test]
async fn the_pool_probe_says_how_long_a_request_waits_for_a_connection() {
    let db = TestDb::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    let idle = server::metrics::acquire_wait(&pool).await;
    assert!(idle < Duration::from_millis(500), "a connection is free: {idle:?}");
    let held = pool.acquire().await.unwrap();
    let exhausted = server::metrics::acquire_wait(&pool).await;
    assert_eq!(exhausted, server::metrics::ACQUIRE_PROBE, "every connection is in use");
    drop(held);
    assert!(server::metrics::acquire_wait(&pool).await < Duration::from_millis(500));
}
