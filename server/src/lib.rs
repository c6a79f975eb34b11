//! The Code Import server: configuration, database start-up and the HTTP router.

use std::{net::SocketAddr, time::Duration};

use app::{shell, state::AppState, App};
use axum::{extract::State, http::StatusCode, routing::get, Router};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use sqlx::{
    migrate::{MigrateDatabase, Migrator},
    postgres::PgPoolOptions,
    PgPool, Postgres,
};
use tower_http::trace::TraceLayer;

/// The schema, embedded in the binary and applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The local PostgreSQL this machine runs, used when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/code_import";
/// Where the app listens when `APP_ADDR` is not set.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
/// Where Trunk writes the site (`pkg/` below it), relative to the working directory.
pub const DEFAULT_SITE_ROOT: &str = "target/site";

/// What the server needs to start, read from the environment.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub addr: SocketAddr,
    pub site_root: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact(&self.database_url))
            .field("addr", &self.addr)
            .field("site_root", &self.site_root)
            .finish()
    }
}

/// Why the server could not start. Each renders as one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("APP_ADDR={value:?} is not an address like 127.0.0.1:3000")]
    BadAddr { value: String },
    #[error("cannot reach PostgreSQL at {url}: {source}")]
    Unreachable { url: String, source: sqlx::Error },
    #[error("cannot create the database at {url}: {source}")]
    CreateDatabase { url: String, source: sqlx::Error },
    #[error("cannot migrate the database at {url}: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

impl Config {
    /// Reads `DATABASE_URL`, `APP_ADDR` and `LEPTOS_SITE_ROOT`, with local defaults.
    pub fn from_env() -> Result<Self, StartupError> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let addr = var("APP_ADDR", DEFAULT_ADDR);
        Ok(Self {
            database_url: var("DATABASE_URL", DEFAULT_DATABASE_URL),
            addr: addr.parse().map_err(|_| StartupError::BadAddr { value: addr })?,
            site_root: var("LEPTOS_SITE_ROOT", DEFAULT_SITE_ROOT),
        })
    }
}

/// The URL with any password replaced by `***`, safe to log.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Creates the database if it does not exist, connects a pool and applies the migrations.
/// Fails with a one-line reason when PostgreSQL is unreachable or a migration fails.
pub async fn prepare_database(url: &str) -> Result<PgPool, StartupError> {
    let shown = redact(url);
    let exists = Postgres::database_exists(url)
        .await
        .map_err(|source| StartupError::Unreachable { url: shown.clone(), source })?;
    if !exists {
        if let Err(source) = Postgres::create_database(url).await {
            // Another server process may have created it at the same moment.
            if !Postgres::database_exists(url).await.unwrap_or(false) {
                return Err(StartupError::CreateDatabase { url: shown, source });
            }
        }
        tracing::info!(database = %shown, "created the database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|source| StartupError::Unreachable { url: shown.clone(), source })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|source| StartupError::Migrate { url: shown, source })?;
    Ok(pool)
}

/// Leptos' options for this deployment: the bundle is `pkg/frontend.js` + `pkg/frontend_bg.wasm`.
pub fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("frontend")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build()
}

/// Every route of the app: the pages, the server functions under `/api`, `/healthz`, and the
/// static bundle.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 200 when the database answers within two seconds, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer within 2 s");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Prepares the database and serves the app until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let pool = prepare_database(&config.database_url).await?;
    let state = AppState { pool, leptos_options: leptos_options(&config) };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartupError::Bind { addr: config.addr, source })?;
    tracing::info!(addr = %config.addr, database = %redact(&config.database_url), "listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(StartupError::Serve)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_in_the_database_url_is_never_shown() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/ci"), "postgres://app:***@db:5432/ci");
        assert_eq!(redact("postgres://postgres@127.0.0.1/ci"), "postgres://postgres@127.0.0.1/ci");
        assert_eq!(redact("not a url"), "not a url");
    }
}
