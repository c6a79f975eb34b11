#![recursion_limit = "256"]
//! The Code Import server: configuration, database start-up and the HTTP router.

use std::{net::SocketAddr, time::Duration};

use app::{
    auth::{session_store::PgSessionStore, ssr::require_sign_in_for_pages},
    shell,
    state::AppState,
    App,
};
use axum::{
    extract::{DefaultBodyLimit, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use sqlx::migrate::Migrator;
use tower_http::{
    compression::{
        predicate::{DefaultPredicate, NotForContentType, Predicate},
        CompressionLayer,
    },
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    services::ServeDir,
    trace::TraceLayer,
};
use tower_sessions::{cookie::SameSite, session_store::ExpiredDeletion, Expiry, SessionManagerLayer};

pub mod bench;
pub mod cli;
pub mod database;
pub mod metrics;

pub use database::prepare_database;

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
    /// The origin browsers see the app at (`APP_ORIGIN`), accepted for state-changing
    /// requests besides the request's own `Host`; `https://…` also makes cookies `Secure`.
    pub public_origin: Option<String>,
    /// Where `/metrics` is served (`METRICS_ADDR`); nowhere if unset.
    pub metrics_addr: Option<SocketAddr>,
}

impl Config {
    /// Whether session cookies get the `Secure` attribute.
    pub fn secure_cookies(&self) -> bool {
        self.public_origin.as_deref().is_some_and(|origin| origin.starts_with("https://"))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact(&self.database_url))
            .field("addr", &self.addr)
            .field("site_root", &self.site_root)
            .field("public_origin", &self.public_origin)
            .field("metrics_addr", &self.metrics_addr)
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
    #[error(
        "DATABASE_URL ({url}) goes through a pooler in transaction or statement mode: Code Import keeps one \
         lock per merchant for the whole of a check or an insert, which needs a database session per \
         connection; use the pooler's session mode (PgBouncer: pool_mode = session; Supabase: the session pooler)"
    )]
    SharedSessions { url: String },
    #[error(
        "row-level security applies to role {role} on table {table}: its policies would hide codes from the \
         duplicate check and refuse the insert; connect as the table's owner or as a role with BYPASSRLS"
    )]
    RowSecurity { table: String, role: String },
    #[error("cannot migrate the database at {url}: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Command(String),
}

impl Config {
    /// Reads `DATABASE_URL`, `APP_ADDR`, `LEPTOS_SITE_ROOT` and `APP_ORIGIN`, with local
    /// defaults.
    pub fn from_env() -> Result<Self, StartupError> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let addr = var("APP_ADDR", DEFAULT_ADDR);
        Ok(Self {
            database_url: var("DATABASE_URL", DEFAULT_DATABASE_URL),
            addr: addr.parse().map_err(|_| StartupError::BadAddr { value: addr })?,
            site_root: var("LEPTOS_SITE_ROOT", DEFAULT_SITE_ROOT),
            public_origin: std::env::var("APP_ORIGIN").ok().map(|o| o.trim_end_matches('/').to_owned()),
            metrics_addr: match std::env::var("METRICS_ADDR") {
                Ok(value) => Some(value.parse().map_err(|_| StartupError::BadAddr { value })?),
                Err(_) => None,
            },
        })
    }
}

/// The URL with any password replaced by `***`, safe to log.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
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

/// How long a session lives without a request.
const SESSION_IDLE: time::Duration = time::Duration::hours(12);

/// The app's page routes, found once per process. Finding them renders the app with resource
/// loads suppressed process-wide (`leptos_server`'s `SuppressResourceLoad`, a global flag): a
/// page that another router of the same process rendered meanwhile — the tests run many —
/// waited forever on its first resource (leptos-rs/leptos#4773).
fn app_routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Every route of the app: the pages, the server functions under `/api`, `/healthz`, and the
/// static bundle; behind sessions, the sign-in requirement for pages, the same-origin rule
/// for state-changing requests and the security headers.
pub fn router(state: AppState, config: &Config) -> Router {
    let routes = app_routes();
    let options = state.leptos_options.clone();
    let sessions = SessionManagerLayer::new(PgSessionStore::new(state.pool.clone()))
        .with_name("code_import_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies())
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE));
    let allowed_origin = config.public_origin.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/merchants/{merchant}/reports/{file}", get(app::reports::ssr::download))
        .route(
            "/api/uploads/{upload}/files/{file}/chunks/{seq}",
            post(app::staging::ssr::receive_chunk).layer(DefaultBodyLimit::max(app::staging::MAX_CHUNK_BYTES)),
        )
        .nest_service("/pkg", bundle(&config.site_root))
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(state.clone(), require_sign_in_for_pages))
        .layer(sessions)
        .layer(middleware::from_fn(move |request, next| same_origin_only(allowed_origin.clone(), request, next)))
        .layer(middleware::from_fn(error_statuses))
        .layer(middleware::from_fn(refuse_dot_segments))
        .layer(middleware::from_fn(security_headers))
        .layer(compression())
        // Every request gets an id (or keeps the caller's `x-request-id`), carried by each line
        // it logs and echoed in the response.
        .layer(middleware::from_fn(metrics::count_requests))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The bundle under `/pkg/`: a file's brotli or gzip copy beside it (`frontend_bg.wasm.br`,
/// made once at build time at brotli's best quality, a quarter smaller than compressing each
/// answer on the fly) when the browser accepts it, else the file itself, which
/// [`compression`] then compresses.
fn bundle(site_root: &str) -> ServeDir {
    ServeDir::new(std::path::Path::new(site_root).join("pkg")).precompressed_br().precompressed_gzip()
}

/// Compresses what goes to the browser (gzip or brotli, as it accepts): the WASM bundle shrinks
/// to about a third, pages and answers more. Not the CSV reports: they stream millions of rows,
/// and compressing them would bound the export's speed by one core of the server.
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(DefaultPredicate::new().and(NotForContentType::const_new("text/csv")))
}

/// The span of one request: its id, method and path (never its query: it may name a merchant's
/// data, and the id finds the rest).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// Refuses state-changing requests (anything but GET, HEAD, OPTIONS) that a browser sent from
/// another site: server functions have no CSRF token, so the `Origin` (or, without it,
/// `Sec-Fetch-Site`) must name this app. Requests with neither header do not come from a
/// browser page, and carry no ambient cookie a forgery could abuse.
async fn same_origin_only(allowed_origin: Option<String>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_site = match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            origin_host.is_some() && origin_host == host || allowed_origin.as_deref() == Some(origin)
        }
        None => match headers.get("sec-fetch-site").and_then(|s| s.to_str().ok()) {
            Some(site) => site == "same-origin" || site == "none",
            None => true,
        },
    };
    if same_site {
        next.run(request).await
    } else {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), "cross-origin request refused");
        (StatusCode::FORBIDDEN, "cross-origin request refused").into_response()
    }
}

/// The largest body a server function takes (the upload's chunks have their own route and limit).
pub const SERVER_FN_BODY_LIMIT: usize = 1024 * 1024;

/// Whether `path` is a server function's (not a chunk upload or a report download).
fn is_server_function(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/uploads/") && !path.starts_with("/api/merchants/")
}

/// One error policy on the wire for server functions: the status is the one the `AppError` in
/// the body calls for, also for errors raised before a function's body runs (arguments that do
/// not decode: 400), which the server-function layer answers 500; a body over
/// [`SERVER_FN_BODY_LIMIT`] is 413 before anything reads it.
async fn error_statuses(request: Request, next: Next) -> Response {
    if !is_server_function(request.uri().path()) {
        return next.run(request).await;
    }
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > SERVER_FN_BODY_LIMIT) {
        let error = app::error::AppError::TooLarge(format!(
            "The request is larger than the {} KiB a server function takes.",
            SERVER_FN_BODY_LIMIT / 1024
        ));
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(error)).into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(app::error::AppError::Internal)).into_response();
    };
    if let Ok(error) = serde_json::from_slice::<app::error::AppError>(&bytes) {
        parts.status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Refuses a path with `.` or `..` segments (raw or percent-encoded). Browsers resolve them
/// before sending, and the sign-in and ops-only gates must decide on the path the router
/// serves: `/api/../upload` once gave an anonymous client the upload page's shell.
async fn refuse_dot_segments(request: Request, next: Next) -> Response {
    let dotted = request.uri().path().split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if dotted {
        let error = app::error::AppError::invalid("The path has . or .. segments.");
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    next.run(request).await
}

/// Pages and API answers are never cached (the back button after signing out must not show
/// data) nor framed; the bundle under `/pkg/` may be cached. Every answer carries a
/// Content-Security-Policy: a page's own (with its nonce, set by the shell), else the same
/// policy without a nonce.
async fn security_headers(request: Request, next: Next) -> Response {
    let cacheable = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !cacheable {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(policy) = HeaderValue::from_str(&app::content_security_policy_for(None)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
    }
    response
}

/// Serves `router` on `listener`, with each request's peer address available (sign-in
/// throttling counts failures per address).
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    use std::future::IntoFuture;
    let (signalled, mut signal) = tokio::sync::watch::channel(false);
    let served = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            let _ = signalled.send(true);
        })
        .into_future();
    // After the signal no connection is accepted; requests in flight (a chunk being stored)
    // get `DRAIN` to finish.
    let drained = async move {
        let _ = signal.wait_for(|&signalled| signalled).await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        served = served => served,
        () = drained => {
            tracing::warn!(seconds = DRAIN.as_secs(), "requests still in flight after the drain: stopping");
            Ok(())
        }
    }
}

/// How long requests in flight may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// Liveness: 200 while the process answers (a restart would not help a database that is down:
/// that is what `/readyz` says).
async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}

/// Readiness: 200 when the database answers within two seconds and every migration this binary
/// carries is applied; 503 with the reason otherwise (a load balancer sends no request here).
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let applied =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success AND version = ANY($1)")
            .bind(&versions)
            .fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), applied).await {
        Ok(Ok(applied)) if applied == versions.len() as i64 => (StatusCode::OK, "ready"),
        Ok(Ok(_)) => (StatusCode::SERVICE_UNAVAILABLE, "migrations not applied"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within 2 s");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// Runs a command of the command line: serves the app or creates an account or merchant.
pub async fn execute(command: cli::Command) -> Result<(), StartupError> {
    use cli::Command;
    let config = Config::from_env()?;
    match command {
        Command::Serve => run(config).await,
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Command::CreateUser { email, role, merchants } => {
            let password = cli::read_password().map_err(StartupError::Command)?;
            let pool = prepare_database(&config.database_url).await?;
            let id = app::auth::ssr::create_user(&pool, &email, password, role, &merchants)
                .await
                .map_err(|error| StartupError::Command(error.to_string()))?;
            let email = app::auth::ssr::normalise_email(&email).unwrap_or(email);
            println!("created {} {email} ({id})", role.label().to_lowercase());
            Ok(())
        }
        Command::Bench(options) => {
            crate::bench::run(&config.database_url, &options).await.map_err(StartupError::Command)
        }
        Command::BenchBatch { options, dir } => {
            crate::bench::write_batch(&config.database_url, &options, &dir).await.map_err(StartupError::Command)
        }
        Command::BenchStage { files, json } => {
            crate::bench::stage_files(&config.database_url, &files, json).await.map_err(StartupError::Command)
        }
        Command::RenameMerchant { id, name } => {
            let pool = prepare_database(&config.database_url).await?;
            let merchant = app::admin::ssr::rename_merchant(&pool, id, &name)
                .await
                .map_err(|error| StartupError::Command(error.to_string()))?;
            println!("renamed merchant {} to {}", merchant.id, merchant.name);
            Ok(())
        }
        Command::CreateMerchant { name } => {
            let pool = prepare_database(&config.database_url).await?;
            let merchant = app::admin::ssr::create_merchant(&pool, &name)
                .await
                .map_err(|error| StartupError::Command(error.to_string()))?;
            println!("created merchant {} ({})", merchant.name, merchant.id);
            Ok(())
        }
    }
}

/// Prepares the database and serves the app until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let pool = prepare_database(&config.database_url).await?;
    match database::original_staging_note(&pool).await {
        Ok(Some(note)) => tracing::info!("{note}"),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "could not read what the adoption of the original staging carried"),
    }
    // Operations whose server died (this one, before a restart) are marked failed.
    if let Err(error) = app::operations::ssr::reap_all(&pool).await {
        tracing::warn!(%error, "could not mark interrupted operations failed");
    }
    if let Err(error) = app::staging::ssr::recover_lost_staging(&pool).await {
        tracing::warn!(%error, "could not check whether staging survived the database");
    }
    let state = AppState { pool: pool.clone(), leptos_options: leptos_options(&config) };
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartupError::Bind { addr: config.addr, source })?;
    tokio::spawn(delete_expired_sessions(PgSessionStore::new(pool.clone())));
    if let Some(addr) = config.metrics_addr {
        let handle =
            metrics::install().ok_or(StartupError::Command("the metrics recorder was installed twice".into()))?;
        let listener_pool = pool.clone();
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(addr, handle, listener_pool).await {
                tracing::error!(%addr, %error, "could not serve /metrics");
            }
        });
    }
    tracing::info!(addr = %config.addr, database = %redact(&config.database_url), "listening");
    let served = serve(listener, router(state, &config)).await.map_err(StartupError::Serve);
    // Nothing runs on past the process: a running operation is stopped, and its job failed with
    // the shutdown as the reason, never left `processing`.
    let stopped = app::operations::ssr::stop_all(&pool).await;
    tracing::info!(stopped, "shut down");
    served
}

/// Deletes expired sessions every hour (expired ones are never loaded anyway).
async fn delete_expired_sessions(store: PgSessionStore) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        if let Err(error) = store.delete_expired().await {
            tracing::warn!(%error, "could not delete expired sessions");
        }
    }
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
