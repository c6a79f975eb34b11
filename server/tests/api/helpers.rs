//! Test support: a fresh PostgreSQL database per test and the real router on a real socket.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use app::auth::Role;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

/// The server to create test databases on; the local PostgreSQL unless `TEST_DATABASE_URL`
/// names another (its database part is ignored).
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A chunk's body in the wire format, of rows written as CSV lines
/// `line,merchant,code,serial,sku,points,sku_name,batch_code,price` (the merchant is not sent:
/// the wire format carries none, every row is the upload's merchant's).
pub fn wire_chunk(rows: impl AsRef<[u8]>) -> Vec<u8> {
    let mut writer = app::csv::wire::ChunkWriter::default();
    let mut reader = app::csv::RecordReader::new(b',');
    let mut each = |record: app::csv::Record<'_>| {
        let field = |i| record.get(i).map(|raw| std::str::from_utf8(raw).unwrap()).filter(|v| !v.is_empty());
        let line = field(0).expect("a line number").parse().expect("a line number");
        let mut fields = [None; 8];
        for (slot, i) in fields[1..].iter_mut().zip(2..) {
            *slot = field(i);
        }
        writer.push(line, &app::csv::StagedRow { merchant_id: Uuid::nil(), fields });
    };
    reader.feed(rows.as_ref(), &mut each);
    reader.finish(&mut each);
    writer.finish(6)
}

/// The host and port of the test PostgreSQL (for a pooler put in front of it).
pub fn postgres_host_port() -> (String, u16) {
    let admin = admin_url();
    let after_at = admin.rsplit_once('@').map(|(_, rest)| rest).unwrap_or(&admin);
    let authority = after_at.split('/').next().unwrap_or("127.0.0.1:5432");
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(5432)),
        None => (authority.to_owned(), 5432),
    }
}

fn url_with_database(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A database name of this test run; dropped (with its connections) when the value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The server's maintenance database, where this one is dropped.
    admin: String,
}

impl TestDb {
    /// A name that no database has yet; the database itself is not created.
    pub fn unique() -> Self {
        let name = format!("code_import_test_{}", Uuid::new_v4().simple());
        let url = url_with_database(&name);
        Self { name, url, admin: admin_url() }
    }

    /// A new, empty database (no migrations).
    pub async fn create() -> Self {
        let db = Self::unique();
        let mut admin = PgConnection::connect(&admin_url()).await.expect("connect to PostgreSQL");
        admin
            .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{}""#, db.name)))
            .await
            .expect("create the test database");
        db
    }

    /// Database `name`, which exists already on the server at `base` (`postgres://user@host:port`).
    pub fn on_server(name: String, base: String) -> Self {
        Self { url: format!("{base}/{name}"), admin: format!("{base}/postgres"), name }
    }

    pub async fn connect(&self) -> PgPool {
        PgPool::connect(&self.url).await.expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin_url = self.admin.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#)))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The app served on `127.0.0.1:<free port>` against its own database, as `server::run` would.
pub struct TestApp {
    pub addr: SocketAddr,
    pub pool: PgPool,
    /// A client without a session, that does not follow redirects.
    pub client: reqwest::Client,
    pub db: TestDb,
}

/// A user created for a test, with the password to sign in.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client with its own cookie jar that does not follow redirects.
    pub fn new_client() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Calls server function `/api/<endpoint>` with form-encoded arguments.
    pub async fn call(&self, client: &reqwest::Client, endpoint: &str, form: &[(&str, String)]) -> reqwest::Response {
        client.post(self.url(&format!("/api/{endpoint}"))).form(form).send().await.expect("request")
    }

    /// Calls `start-upload` as `client` for `merchant` with `files` (it takes JSON).
    pub async fn start_upload(
        &self,
        client: &reqwest::Client,
        merchant: Uuid,
        files: &[app::staging::FileManifest],
    ) -> reqwest::Response {
        client
            .post(self.url("/api/start-upload"))
            .json(&serde_json::json!({ "merchant": merchant, "files": files }))
            .send()
            .await
            .expect("request")
    }

    /// Creates a merchant directly in the database.
    pub async fn merchant(&self, name: &str) -> Uuid {
        app::admin::ssr::create_merchant(&self.pool, name).await.expect("create merchant").id
    }

    /// Creates a user directly (as `server create-user` does).
    pub async fn user(&self, role: Role, merchants: &[Uuid]) -> TestUser {
        let email = format!("{}-{}@example.com", role.as_str(), Uuid::new_v4().simple());
        let id = app::auth::ssr::create_user(&self.pool, &email, PASSWORD.to_owned(), role, merchants)
            .await
            .expect("create user");
        TestUser { id, email, password: PASSWORD.to_owned() }
    }

    /// A client signed in as `user`.
    pub async fn sign_in(&self, user: &TestUser) -> reqwest::Client {
        let client = Self::new_client();
        let response =
            self.call(&client, "login", &[("email", user.email.clone()), ("password", user.password.clone())]).await;
        assert!(response.status().is_success() || response.status().is_redirection(), "sign-in: {}", response.status());
        client
    }
}

/// Creates and migrates a fresh database through the server's own start-up path, then serves
/// the real router on a free loopback port.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.expect("prepare the database");
    let addr = serve(&db, pool.clone()).await;
    TestApp { addr, pool, client: TestApp::new_client(), db }
}

/// Serves another server process' worth of router on the same database (a restart, or a
/// second process behind a load balancer).
pub async fn serve(db: &TestDb, pool: PgPool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let config = server::Config {
        database_url: db.url.clone(),
        addr,
        site_root: server::DEFAULT_SITE_ROOT.to_owned(),
        public_origin: None,
        metrics_addr: None,
    };
    let state = app::state::AppState { pool, leptos_options: server::leptos_options(&config) };
    let router = server::router(state, &config);
    tokio::spawn(async move { server::serve(listener, router).await.expect("serve") });
    addr
}

/// Kills the connections that hold operation locks in this test's database, as a server
/// process dying mid-operation would (its connections drop, its locks go).
pub async fn kill_operation_connections(pool: &PgPool) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Records the merchant's rows that a test put into staging with SQL (those of no upload) as
/// one completed upload of its live batch, one file per `source_file` — what an upload through
/// the app leaves behind, so the batch counts them and a check after it is stale.
pub async fn register_staged(pool: &PgPool, merchant: Uuid) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO merchants (id, name) VALUES ($1, 'Merchant ' || $1) ON CONFLICT DO NOTHING")
        .bind(merchant)
        .execute(&mut *tx)
        .await
        .unwrap();
    let batch = app::batch::ssr::for_upload(&mut tx, merchant).await.unwrap();
    let upload = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO uploads (id, merchant_id, status, row_base, total_rows, batch_id, finished_at)
         SELECT $1, $2, 'completed', 0, count(*), $3, now() FROM codes_check_temp WHERE merchant_id = $2 AND upload_id IS NULL",
    )
    .bind(upload)
    .bind(merchant)
    .bind(batch)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO upload_files (upload_id, file_index, name, size, checksum, rows_expected, row_offset, rows_received)
         SELECT $1, (row_number() OVER (ORDER BY name))::int - 1, name, rows, 'sql-' || name, rows, 0, rows
         FROM (SELECT COALESCE(source_file, 'sql') AS name, count(*) AS rows FROM codes_check_temp
               WHERE merchant_id = $2 AND upload_id IS NULL GROUP BY 1) files",
    )
    .bind(upload)
    .bind(merchant)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE codes_check_temp SET upload_id = $1 WHERE merchant_id = $2 AND upload_id IS NULL")
        .bind(upload)
        .bind(merchant)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Holds an exclusive lock on `codes` until the transaction ends, so that an operation that
/// reads it waits: it stays running as long as a test needs.
pub async fn hold_codes(pool: &PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE codes IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
    tx
}

/// Waits until no operation runs for `merchant` (30 s at most).
pub async fn wait_idle(pool: &PgPool, merchant: Uuid) {
    for _ in 0..600 {
        if app::operations::ssr::running(pool, merchant).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the operation did not finish");
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon of a Debian package that a test owns (PgBouncer, HAProxy): its process and the
/// folder with its configuration, both gone when dropped.
pub struct Daemon {
    pub port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl Daemon {
    /// Starts `command` (`what`, for messages) in the foreground and waits (20 s at most) until
    /// it listens on `port`; `scripts/test` installs the packages.
    pub fn start(command: &mut Command, port: u16, dir: std::path::PathBuf, what: &str) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                panic!("{what} did not start listening on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { port, child, dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real server binary, as a process of its own on `database_url` (several may share one
/// database, as behind a load balancer); killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: String,
}

impl ServerProcess {
    /// Starts the binary on a free port and waits until `/healthz` answers 200.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[("RUST_LOG", "error")], Stdio::null()).await
    }

    /// Like [`ServerProcess::start`], with `env` set and its log written to `log`.
    pub async fn start_with(database_url: &str, env: &[(&str, &str)], log: impl Into<Stdio>) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env("DATABASE_URL", database_url)
            .env("APP_ADDR", &addr)
            .envs(env.iter().copied())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server binary");
        let started = Instant::now();
        let client = reqwest::Client::new();
        while !client.get(format!("http://{addr}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            assert!(started.elapsed() < Duration::from_secs(30), "the server on {addr} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, addr }
    }

    /// A `kB` figure of `/proc/<pid>/status` (`VmRSS:` now, `VmHWM:` the peak), in MiB.
    pub fn memory_mb(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    }

    /// A client signed in as `email` on this process.
    pub async fn sign_in(&self, email: &str) -> reqwest::Client {
        let client = TestApp::new_client();
        let signed_in = client
            .post(format!("http://{}/api/login", self.addr))
            .form(&[("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert!(signed_in.status().is_success() || signed_in.status().is_redirection(), "{}", signed_in.status());
        client
    }

    /// Sends SIGTERM, as an orchestrator stopping the service does, and waits (60 s at most)
    /// for the process to exit; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process outright (SIGKILL), as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether the tests run as root (CI does): daemons that refuse root then run as postgres.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}
