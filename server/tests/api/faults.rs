//! Faults of the database: PostgreSQL restarted under a running insert and under an upload.
//! The test owns the cluster it restarts (`initdb` on a free port); the machine's shared
//! cluster is never touched.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use app::{
    auth::Role,
    csv::FileReport,
    staging::{chunk_path, FileManifest, UploadState},
};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{free_port, is_root, serve, wait_idle, wire_chunk, TestApp, TestDb};

/// A PostgreSQL cluster of the test's own, stopped and deleted when dropped.
struct OwnCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnCluster {
    fn start() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .unwrap();
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let dir = std::env::temp_dir().join(format!("ci-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self { bin, dir, port: free_port() };
        cluster.give_to_postgres();
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Gives the folder to the postgres user when run as root (initdb refuses root).
    fn give_to_postgres(&self) {
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir).status().unwrap();
            assert!(status.success());
        }
    }

    /// One of PostgreSQL's programs, to run as the postgres user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-o", &options, "-l", &log, "-m", "fast", "-w", "-t", "60", action]);
    }

    /// Starts the cluster again from another thread; the value is forgotten (the test's own
    /// handle stops and deletes the cluster).
    fn start_again(self) {
        self.pg_ctl("start");
        std::mem::forget(self);
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A new database on this cluster (dropped with the cluster).
    async fn database(&self) -> TestDb {
        let name = format!("code_import_fault_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.admin_url()).await.unwrap();
        admin.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.unwrap();
        TestDb::on_server(name, format!("postgres://postgres@127.0.0.1:{}", self.port))
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The app served in this process against a database on `cluster`.
async fn app_on(cluster: &OwnCluster) -> TestApp {
    let db = cluster.database().await;
    let pool = server::prepare_database(&db.url).await.expect("prepare the database");
    let addr = serve(&db, pool.clone()).await;
    TestApp { addr, pool, client: TestApp::new_client(), db }
}

#[tokio::test]
async fn a_restart_of_postgresql_during_an_insert_fails_the_job_with_its_reason_and_leaves_no_row() {
    let cluster = OwnCluster::start();
    let app = app_on(&cluster).await;
    let merchant = app.merchant("Restarted").await;
    let user = app.user(Role::Ops, &[]).await;
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
         SELECT $1, n, 'R-' || n, 'r.csv', n + 1 FROM generate_series(1, 5000) AS n",
    )
    .bind(merchant)
    .execute(&app.pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&app.pool, merchant).await;
    app::duplicates::ssr::start_check(&app.pool, merchant, None).await.unwrap();
    wait_idle(&app.pool, merchant).await;

    // The insert waits on production while the database restarts under it.
    let mut holder = PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE codes IN ACCESS EXCLUSIVE MODE").execute(&mut holder).await.unwrap();
    let job = app::jobs::ssr::start_insert(&app.pool, merchant, user.id, "YES").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.pg_ctl("restart");
    drop(holder);

    let deadline = Instant::now() + Duration::from_secs(60);
    let job_read = loop {
        // The job as its page reads it: one whose insert lost its lock reads as failed at once,
        // whether or not its row was written yet (the database was still coming back).
        if let Ok(Some(detail)) = app::jobs::ssr::job_detail(&app.pool, job).await {
            if !detail.summary.status.is_running() {
                break detail.summary;
            }
        }
        assert!(Instant::now() < deadline, "the insert is still running after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job_read.status, app::jobs::JobStatus::Failed);
    let message = job_read.error_message;
    assert!(message.as_deref().is_some_and(|m| m.contains("nothing was inserted")), "the job says why: {message:?}");
    let landed: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&app.pool).await.unwrap();
    assert_eq!(landed, 0, "no partial rows");

    let rerun = app::jobs::ssr::start_insert(&app.pool, merchant, user.id, "YES").await.unwrap();
    wait_idle(&app.pool, merchant).await;
    let (status, inserted): (String, Option<i64>) =
        sqlx::query_as("SELECT status, codes_inserted FROM codes_import_jobs WHERE id = $1")
            .bind(rerun)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), inserted), ("completed", Some(5000)));
}

#[tokio::test]
async fn a_restart_of_postgresql_during_an_upload_loses_nothing_and_the_upload_resumes() {
    let cluster = OwnCluster::start();
    let app = app_on(&cluster).await;
    let merchant = app.merchant("Resumed").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    let chunks = 8;
    let manifest = FileManifest {
        name: "r.csv".into(),
        size: 1,
        checksum: "s".into(),
        rows: chunks * 500,
        report: FileReport::default(),
        restage: false,
    };
    let upload: UploadState = app.start_upload(&admin, merchant, &[manifest]).await.json().await.unwrap();
    let mut refused_while_down = 0;
    let mut restarting = None;
    for seq in 0..chunks {
        if seq == 3 {
            // The restart, in two halves with this chunk sent between them. Down for longer
            // than the pool waits for a connection (10 s): a shorter outage is absorbed by the
            // wait, with no error at all.
            cluster.pg_ctl("stop");
            let (bin, port, dir) = (cluster.bin.clone(), cluster.port, cluster.dir.clone());
            restarting = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(12));
                OwnCluster { bin, dir, port }.start_again();
            }));
        }
        let body = wire_chunk(
            (0..500).map(|i| format!("{},{merchant},UP-{seq}-{i},,,,,,\n", i + 2 + seq * 500)).collect::<String>(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let response =
                admin.post(app.url(&chunk_path(upload.id, 0, seq as i32))).body(body.clone()).send().await.unwrap();
            if response.status() == 200 {
                break;
            }
            // While the database is away the answer is 503 ("later", which the page retries),
            // never 500 (which it would not).
            let status = response.status().as_u16();
            assert_eq!(status, 503, "chunk {seq}: {}", response.text().await.unwrap());
            assert!(response.headers().contains_key("retry-after"));
            refused_while_down += 1;
            assert!(Instant::now() < deadline, "chunk {seq} never got through");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    restarting.map(|t| t.join().unwrap());
    assert!(refused_while_down > 0, "a chunk was sent while the database was down");
    let done = app.call(&admin, "finish-upload", &[("upload", upload.id.to_string())]).await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let (rows, distinct, last): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT code), max(row_number) FROM codes_check_temp WHERE merchant_id = $1",
    )
    .bind(merchant)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((rows, distinct, last), (chunks * 500, chunks * 500, chunks * 500), "every row once");
    eprintln!("chunks answered 503 while the database restarted: {refused_while_down}");
}

#[tokio::test]
async fn readyz_is_503_while_postgresql_is_stopped_and_200_once_it_is_back() {
    let cluster = OwnCluster::start();
    let app = app_on(&cluster).await;
    let ready = || async { reqwest::get(app.url("/readyz")).await.unwrap().status().as_u16() };
    assert_eq!(ready().await, 200);
    cluster.pg_ctl("stop");
    assert_eq!(ready().await, 503, "the database is down");
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200, "the process answers");
    cluster.pg_ctl("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().await != 200 {
        assert!(Instant::now() < deadline, "not ready 30 s after PostgreSQL came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
