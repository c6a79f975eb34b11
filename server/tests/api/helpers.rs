//! Test support: a fresh PostgreSQL database per test and the real router on a real socket.


use std::net::SocketAddr;

use sqlx::{Connection, Executor, PgConnection, PgPool};

/// The server to create test databases on; the local PostgreSQL unless `TEST_DATABASE_URL`
/// names another (its database part is ignored).
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
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
}

impl TestDb {
    /// A name that no database has yet; the database itself is not created.
    pub fn unique() -> Self {
        let name = format!("code_import_test_{}", uuid::Uuid::new_v4().simple());
        let url = url_with_database(&name);
        Self { name, url }
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

    pub async fn connect(&self) -> PgPool {
        PgPool::connect(&self.url).await.expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url()).await.ok()?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                    )))
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
    pub client: reqwest::Client,
    pub db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Creates and migrates a fresh database through the server's own start-up path, then serves
/// the real router on a free loopback port.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.expect("prepare the database");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let config = server::Config {
        database_url: db.url.clone(),
        addr,
        site_root: server::DEFAULT_SITE_ROOT.to_owned(),
    };
    let state = app::state::AppState {
        pool: pool.clone(),
        leptos_options: server::leptos_options(&config),
    };
    tokio::spawn(async move {
        axum::serve(listener, server::router(state)).await.expect("serve");
    });
    TestApp { addr, pool, client: reqwest::Client::new(), db }
}
