//! `GET /metrics` in the Prometheus text format, on an address of its own (`METRICS_ADDR`, off
//! by default), never on the app's: what the app does, counted where it happens through the
//! `metrics` facade, plus the database pool read at each scrape.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{extract::Request, middleware::Next, response::Response, routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

/// Upper bounds (seconds) of the duration histograms: chunks take milliseconds to seconds,
/// operations seconds to many minutes.
const SECONDS_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0];

/// Installs the process's recorder; `None` if one is installed already.
pub fn install() -> Option<PrometheusHandle> {
    PrometheusBuilder::new().set_buckets(&SECONDS_BUCKETS).ok()?.install_recorder().ok()
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle, pool: PgPool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics on /metrics");
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let (handle, pool) = (handle.clone(), pool.clone());
            async move {
                let open = pool.size() as f64;
                let idle = pool.num_idle() as f64;
                metrics::gauge!("db_pool_connections", "state" => "open").set(open);
                metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
                metrics::gauge!("db_pool_connections", "state" => "in_use").set(open - idle);
                metrics::gauge!("db_pool_max_connections").set(pool.options().get_max_connections() as f64);
                metrics::gauge!("db_pool_acquire_wait_seconds").set(acquire_wait(&pool).await.as_secs_f64());
                handle.render()
            }
        }),
    );
    axum::serve(listener, router).await
}

/// How long the scrape waits at most for a database connection (see [`acquire_wait`]).
pub const ACQUIRE_PROBE: Duration = Duration::from_secs(1);

/// How long a request waits for a connection of `pool` now: an acquire timed at the scrape,
/// given up after [`ACQUIRE_PROBE`] (which is then the answer). sqlx counts no tasks waiting
/// for its connections; this says whether they would wait, and how long. Near zero while a
/// connection is idle (or one can be opened at once); the probe's cap when all are in use
/// for longer; the time to fail when the database does not answer.
pub async fn acquire_wait(pool: &PgPool) -> Duration {
    let started = Instant::now();
    if let Ok(Ok(connection)) = tokio::time::timeout(ACQUIRE_PROBE, pool.acquire()).await {
        drop(connection);
    }
    started.elapsed().min(ACQUIRE_PROBE)
}

/// Counts every request by route, method and status. The route is the path with ids and
/// numbers as `:id` (a few dozen series, whatever the traffic); paths the app does not know
/// count as `unmatched`, so a scanner cannot grow the series without end.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = route_of(request.uri().path());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let route = if status == axum::http::StatusCode::NOT_FOUND { "unmatched".to_owned() } else { route };
    metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status.as_u16().to_string())
        .increment(1);
    response
}

fn route_of(path: &str) -> String {
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if uuid::Uuid::parse_str(segment).is_ok()
                || (!segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()))
            {
                ":id"
            } else {
                segment
            }
        })
        .collect();
    let route = segments.join("/");
    // The bundle's files are one route.
    if route.starts_with("/pkg/") {
        "/pkg/:file".to_owned()
    } else {
        route
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_route_names_no_id() {
        let upload = uuid::Uuid::new_v4();
        assert_eq!(
            super::route_of(&format!("/api/uploads/{upload}/files/0/chunks/12")),
            "/api/uploads/:id/files/:id/chunks/:id"
        );
        assert_eq!(super::route_of("/api/start-upload"), "/api/start-upload");
        assert_eq!(super::route_of("/pkg/frontend_bg.wasm"), "/pkg/:file");
    }
}
