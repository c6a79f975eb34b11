//! The database behind a pooler, as the users' production database sits behind Supabase's:
//! Debian's PgBouncer, started by the test on a free port. In session mode the whole journey
//! runs through it; in transaction mode the server refuses to start, in one line.

use std::process::Command;

use app::{
    auth::Role,
    csv::FileReport,
    duplicates::ssr as duplicates,
    jobs::{ssr as jobs, JobStatus, JobVerification},
    operations::ssr as operations,
    staging::{chunk_path, FileManifest, UploadState},
};
use uuid::Uuid;

use crate::{
    adoption::Codes,
    helpers::{free_port, is_root, serve, wait_idle, wire_chunk, Daemon, TestApp, TestDb},
};

/// A PgBouncer in front of the test PostgreSQL, stopped when dropped.
pub struct PgBouncer(Daemon);

impl PgBouncer {
    /// Starts `pgbouncer` with `pool_mode` (`session` or `transaction`) and waits until it
    /// accepts connections.
    pub fn start(pool_mode: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ci-pgbouncer-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let (host, pg_port) = crate::helpers::postgres_host_port();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={pg_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = {pool_mode}\n\
                 max_client_conn = 400\ndefault_pool_size = 60\n\
                 ignore_startup_parameters = extra_float_digits,search_path\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let mut command = Command::new("pgbouncer");
        // PgBouncer refuses to run as root; as root, it drops to the postgres user.
        if is_root() {
            make_world_writable(&dir);
            command.args(["-u", "postgres"]);
        }
        command.arg(dir.join("pgbouncer.ini"));
        Self(Daemon::start(&mut command, port, dir, "pgbouncer (Debian's pgbouncer package)"))
    }

    /// The URL of `database` through this PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.0.port)
    }
}

fn make_world_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in [dir.to_path_buf(), dir.join("userlist.txt"), dir.join("pgbouncer.ini")] {
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

#[tokio::test]
async fn the_whole_journey_runs_through_pgbouncer_in_session_mode() {
    let bouncer = PgBouncer::start("session");
    let db = TestDb::create().await;
    let through = bouncer.url(&db.name);
    let pool = server::prepare_database(&through).await.expect("the server starts through PgBouncer");
    let backends: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND client_addr IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(backends >= 1);

    let addr = serve(&db, pool.clone()).await;
    let app = TestApp { addr, pool: pool.clone(), client: TestApp::new_client(), db };
    let merchant = app.merchant("Pooled").await;
    let user = app.user(Role::MerchantAdmin, &[merchant]).await;
    let admin = app.sign_in(&user).await;

    // Production holds some of the codes the batch brings.
    let mut codes = Codes::new(0xb0_u64);
    let batch: Vec<String> = (0..3000).map(|_| codes.code()).collect();
    sqlx::query("INSERT INTO codes (merchant_id, code, source) SELECT $1, c, 'legacy' FROM unnest($2::text[]) AS c")
        .bind(merchant)
        .bind(&batch[..500])
        .execute(&pool)
        .await
        .unwrap();

    // Stage: two files, chunks through the real route.
    let files: Vec<FileManifest> = ["a.csv", "b.csv"]
        .iter()
        .map(|name| FileManifest {
            name: (*name).into(),
            size: 1000,
            checksum: format!("sum-{name}"),
            rows: 1500,
            report: FileReport::default(),
            restage: false,
        })
        .collect();
    let upload: UploadState = app.start_upload(&admin, merchant, &files).await.json().await.unwrap();
    for (file, rows) in batch.chunks(1500).enumerate() {
        for (seq, part) in rows.chunks(500).enumerate() {
            let body: String = part
                .iter()
                .enumerate()
                .map(|(i, code)| format!("{},{merchant},{code},,,5,\"Café, crème\",,\n", seq * 500 + i + 2))
                .collect();
            let sent = admin
                .post(app.url(&chunk_path(upload.id, file as i32, seq as i32)))
                .body(wire_chunk(body))
                .send()
                .await
                .unwrap();
            assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
        }
    }
    let done = app.call(&admin, "finish-upload", &[("upload", upload.id.to_string())]).await;
    assert_eq!(done.json::<UploadState>().await.unwrap().status, app::staging::UploadStatus::Completed);

    // Another server process, through the same pooler, holds the merchant's lock: the check
    // is refused as busy — the lock holds through PgBouncer.
    let other_process = sqlx::PgPool::connect(&through).await.unwrap();
    let holder = operations::begin(&other_process, merchant, "clear", None).await.unwrap();
    let busy = app.call(&admin, "start-check", &[("merchant", merchant.to_string())]).await;
    assert_eq!(busy.status(), 409, "{}", busy.text().await.unwrap());
    holder.finish(Ok(serde_json::json!({ "rows_deleted": 0 }))).await;
    let started = app.call(&admin, "start-check", &[("merchant", merchant.to_string())]).await;
    assert_eq!(started.status(), 200, "{}", started.text().await.unwrap());
    wait_idle(&pool, merchant).await;
    let figures = duplicates::review_state(&pool, merchant).await.unwrap().figures.expect("figures");
    assert_eq!(figures.overall.total_rows, 3000);
    assert_eq!(figures.overall.database_duplicates, 500);
    assert_eq!(figures.overall.clean_count, 2500);

    // Pre-flight, insert, verify, rollback.
    let preflight = app.call(&admin, "preflight-insert", &[("merchant", merchant.to_string())]).await;
    assert_eq!(preflight.status(), 200, "{}", preflight.text().await.unwrap());
    wait_idle(&pool, merchant).await;
    let job: Uuid = app
        .call(&admin, "start-insert", &[("merchant", merchant.to_string()), ("confirmation", "YES".into())])
        .await
        .json()
        .await
        .unwrap();
    wait_idle(&pool, merchant).await;
    let detail = jobs::job_detail(&pool, job).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, JobStatus::Completed, "{:?}", detail.summary.error_message);
    assert_eq!(detail.summary.codes_inserted, Some(2500));
    let verified: JobVerification =
        app.call(&admin, "verify-job", &[("job", job.to_string())]).await.json().await.unwrap();
    assert_eq!(
        verified,
        JobVerification { status: JobStatus::Completed, codes_inserted: Some(2500), codes_found: 2500 }
    );
    let rolled = app.call(&admin, "rollback-job", &[("job", job.to_string()), ("confirmation", "DELETE".into())]).await;
    assert!(rolled.status().is_success(), "{}", rolled.text().await.unwrap());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM codes WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 500, "production holds exactly what it held before the job");
    drop(app);
    drop(bouncer);
}

#[tokio::test]
async fn transaction_mode_is_refused_at_start_up_in_one_line() {
    let bouncer = PgBouncer::start("transaction");
    let db = TestDb::create().await;
    let error = server::prepare_database(&bouncer.url(&db.name)).await.err().expect("refused");
    let line = error.to_string();
    assert!(line.contains("transaction or statement mode") && line.contains("session mode"), "{line}");
    assert!(!line.contains('\n'));
    let pool = db.connect().await;
    let migrated: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!migrated, "nothing was migrated through a pooler that cannot hold the locks");
    // The same database straight, or through a session-mode PgBouncer, starts.
    let session = PgBouncer::start("session");
    server::prepare_database(&session.url(&db.name)).await.expect("session mode starts").close().await;
}
