//! Several server processes on one database behind a real load balancer: Debian's HAProxy,
//! round-robin over three server binaries, all started by the test. Sessions work on every
//! process; an upload's chunks spread across them and complete when one dies; a check or an
//! insert whose process dies is failed with a reason, leaves nothing in production, and reruns.

use std::{
    collections::HashSet,
    process::Command,
    time::{Duration, Instant},
};

use app::{
    auth::{CurrentUser, Role},
    csv::FileReport,
    jobs::JobStatus,
    operations::Operation,
    staging::{chunk_path, FileManifest, UploadState},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{free_port, hold_codes, wait_idle, wire_chunk, Daemon, ServerProcess, TestApp, TestDb, PASSWORD};

/// HAProxy in front of `backends`, round-robin, health-checked on `/readyz`; each answer says
/// which backend served it (`x-served-by`). Stopped when dropped.
pub struct HaProxy(Daemon);

impl HaProxy {
    pub fn start(backends: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("ci-haproxy-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("    server s{} {addr} check inter 200ms fall 1 rise 2\n", i + 1))
            .collect();
        let config = format!(
            "global\n    maxconn 2000\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 120s\n\
             \x20   timeout server 120s\n    retries 3\n    option redispatch\n\n\
             frontend app\n    bind 127.0.0.1:{port}\n    default_backend servers\n\n\
             backend servers\n    balance roundrobin\n    option httpchk GET /readyz\n\
             \x20   http-response set-header x-served-by %s\n{servers}"
        );
        std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
        let mut command = Command::new("haproxy");
        command.args(["-db", "-f"]).arg(dir.join("haproxy.cfg"));
        Self(Daemon::start(&mut command, port, dir, "haproxy (Debian's haproxy package)"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0.port)
    }
}

/// Three server processes on one database behind HAProxy, a merchant and its admin signed in
/// through the proxy.
struct Cluster {
    servers: Vec<ServerProcess>,
    proxy: HaProxy,
    pool: PgPool,
    merchant: Uuid,
    client: reqwest::Client,
    _db: TestDb,
}

impl Cluster {
    async fn start() -> Self {
        let db = TestDb::unique();
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(ServerProcess::start(&db.url).await);
        }
        let addrs: Vec<&str> = servers.iter().map(|s| s.addr.as_str()).collect();
        let proxy = HaProxy::start(&addrs);
        let pool = db.connect().await;
        let merchant = app::admin::ssr::create_merchant(&pool, "Balanced").await.unwrap().id;
        let email = format!("balanced-{}@example.com", Uuid::new_v4().simple());
        app::auth::ssr::create_user(&pool, &email, PASSWORD.into(), Role::MerchantAdmin, &[merchant]).await.unwrap();
        let client = TestApp::new_client();
        let signed_in = client
            .post(proxy.url("/api/login"))
            .form(&[("email", email.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert!(signed_in.status().is_success() || signed_in.status().is_redirection());
        Self { servers, proxy, pool, merchant, client, _db: db }
    }

    /// Calls server function `endpoint` through the proxy; the status, the body and who served it.
    async fn call(&self, endpoint: &str, form: &[(&str, String)]) -> (u16, String, String) {
        let response = self.client.post(self.proxy.url(&format!("/api/{endpoint}"))).form(form).send().await.unwrap();
        let served_by = served_by(&response);
        (response.status().as_u16(), served_by, response.text().await.unwrap())
    }

    /// The process behind HAProxy's name `s1`, `s2`, `s3`.
    fn kill(&mut self, name: &str) {
        let index: usize = name.trim_start_matches('s').parse::<usize>().unwrap() - 1;
        self.servers[index].kill();
    }

    async fn latest(&self, kind: &str) -> Operation {
        app::operations::ssr::latest(&self.pool, self.merchant, kind).await.unwrap().expect("an operation")
    }

    /// Stages `rows` rows straight into the database (the check's and the insert's input).
    async fn stage(&self, rows: i64) {
        sqlx::query(
            "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
             SELECT $1, n, 'K' || lpad(((n * 7919) % $2)::text, 12, '0'), 'big.csv', n + 1
             FROM generate_series(1, $2) AS n",
        )
        .bind(self.merchant)
        .bind(rows)
        .execute(&self.pool)
        .await
        .unwrap();
        crate::helpers::register_staged(&self.pool, self.merchant).await;
    }
}

fn served_by(response: &reqwest::Response) -> String {
    response.headers().get("x-served-by").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sessions_work_on_every_process_and_an_upload_completes_when_one_dies_mid_way() {
    let mut cluster = Cluster::start().await;

    let mut seen = HashSet::new();
    for _ in 0..6 {
        let (status, by, body) = cluster.call("signed-in-user", &[]).await;
        assert_eq!(status, 200);
        let user: Option<CurrentUser> = serde_json::from_str(&body).unwrap();
        assert!(user.is_some(), "{by} knows the session");
        seen.insert(by);
    }
    assert_eq!(seen.len(), 3, "every process served the session: {seen:?}");

    let chunks = 12;
    let manifest = FileManifest {
        name: "spread.csv".into(),
        size: 1,
        checksum: "sum".into(),
        rows: chunks * 1000,
        report: FileReport::default(),
        restage: false,
    };
    let upload: UploadState = cluster
        .client
        .post(cluster.proxy.url("/api/start-upload"))
        .json(&serde_json::json!({ "merchant": cluster.merchant, "files": [manifest] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut served = Vec::new();
    for seq in 0..chunks {
        let body = wire_chunk(
            (0..1000)
                .map(|i| format!("{},{},SPREAD-{seq}-{i},,,,,,\n", i + 2 + seq * 1000, cluster.merchant))
                .collect::<String>(),
        );
        if seq == 4 {
            let victim = served.last().cloned().unwrap_or_else(|| "s1".to_owned());
            cluster.kill(&victim);
        }
        // As the page does: retry while no answer comes or the answer says "later".
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = cluster
                .client
                .post(cluster.proxy.url(&chunk_path(upload.id, 0, seq as i32)))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 200 => {
                    served.push(served_by(&response));
                    break;
                }
                Ok(response) if ![502, 503].contains(&response.status().as_u16()) => {
                    panic!("chunk {seq}: {} {}", response.status(), response.text().await.unwrap())
                }
                _ => {
                    assert!(attempt < 20, "chunk {seq} never got through");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
    let spread: HashSet<&String> = served.iter().collect();
    assert!(spread.len() >= 2, "the chunks spread across the processes: {served:?}");
    let (status, _, body) = cluster.call("finish-upload", &[("upload", upload.id.to_string())]).await;
    assert_eq!(status, 200, "{body}");
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT code) FROM codes_check_temp WHERE merchant_id = $1")
            .bind(cluster.merchant)
            .fetch_one(&cluster.pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (chunks * 1000, chunks * 1000), "every row once, none twice");
}

/// Waits until the merchant's latest `kind` operation is no longer running (reaped once its
/// process is gone) and returns it.
async fn ended(cluster: &Cluster, kind: &str) -> Operation {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Any process's read notices the orphan: its lock went with the dead process' session.
        let _ = cluster.call("load-review", &[("merchant", cluster.merchant.to_string())]).await;
        let op = cluster.latest(kind).await;
        if op.status != "running" {
            return op;
        }
        assert!(Instant::now() < deadline, "the {kind} of the dead process is still running");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_check_and_an_insert_whose_process_dies_are_failed_with_a_reason_and_rerun() {
    let mut cluster = Cluster::start().await;
    cluster.stage(20_000).await;
    sqlx::query(
        "INSERT INTO codes (merchant_id, code) SELECT $1, 'K' || lpad(n::text, 12, '0') FROM generate_series(0, 999) n",
    )
    .bind(cluster.merchant)
    .execute(&cluster.pool)
    .await
    .unwrap();

    // The check: its process dies while it waits on production.
    let lock = hold_codes(&cluster.pool).await;
    let (status, by, body) = cluster.call("start-check", &[("merchant", cluster.merchant.to_string())]).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.latest("check").await.status, "running");
    cluster.kill(&by);
    lock.rollback().await.unwrap();
    let failed = ended(&cluster, "check").await;
    assert_eq!(failed.status, "failed");
    assert!(failed.error_message.as_deref().is_some_and(|m| !m.is_empty()), "{failed:?}");
    let (status, _, body) = cluster.call("start-check", &[("merchant", cluster.merchant.to_string())]).await;
    assert_eq!(status, 200, "the rerun starts: {body}");
    wait_idle(&cluster.pool, cluster.merchant).await;
    let figures = app::duplicates::ssr::review_state(&cluster.pool, cluster.merchant).await.unwrap().figures.unwrap();
    assert_eq!(figures.overall.total_rows, 20_000);
    assert_eq!(figures.overall.database_duplicates, 1000);

    // The insert: its process dies while it waits on production.
    let lock = hold_codes(&cluster.pool).await;
    let (status, by, body) = cluster
        .call("start-insert", &[("merchant", cluster.merchant.to_string()), ("confirmation", "YES".into())])
        .await;
    assert_eq!(status, 200, "{body}");
    let job: Uuid = serde_json::from_str(&body).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill(&by);
    lock.rollback().await.unwrap();
    let failed = ended(&cluster, "insert").await;
    assert_eq!(failed.status, "failed");
    // The job page, from any process, says it failed and why.
    let (status, _, body) = cluster.call("get-job", &[("job", job.to_string())]).await;
    assert_eq!(status, 200, "{body}");
    let detail: app::jobs::JobDetail = serde_json::from_str(&body).unwrap();
    assert_eq!(detail.summary.status, JobStatus::Failed);
    assert!(detail.summary.error_message.is_some_and(|m| !m.is_empty()));
    let landed: i64 = sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id = $1")
        .bind(job)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
    assert_eq!(landed, 0, "nothing of the interrupted insert is in production");

    let (status, _, body) = cluster
        .call("start-insert", &[("merchant", cluster.merchant.to_string()), ("confirmation", "YES".into())])
        .await;
    assert_eq!(status, 200, "the rerun starts: {body}");
    let rerun: Uuid = serde_json::from_str(&body).unwrap();
    wait_idle(&cluster.pool, cluster.merchant).await;
    let marked: String = sqlx::query_scalar("SELECT status FROM codes_import_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
    assert_eq!(marked, "failed", "the next operation marked the orphaned job failed");
    let (job_status, inserted): (String, Option<i64>) =
        sqlx::query_as("SELECT status, codes_inserted FROM codes_import_jobs WHERE id = $1")
            .bind(rerun)
            .fetch_one(&cluster.pool)
            .await
            .unwrap();
    assert_eq!((job_status.as_str(), inserted), ("completed", Some(figures.overall.clean_count)));
}
