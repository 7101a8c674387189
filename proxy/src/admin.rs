//! The admin listener (loopback only, enforced by the config loader): `/metrics` for Prometheus,
//! `/livez` (the process answers) and `/readyz` (listeners bound and a policy in force; `503
//! draining` from the moment shutdown begins, so a load balancer stops sending). It keeps
//! answering through the whole drain and goes away only with the process: a probe during the
//! drain gets "draining", never a refused connection.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::state::ProxyState;

/// Serves the admin endpoints on `listener` for as long as the process runs.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state);
    let served = axum::serve(listener, app).await;
    if let Err(error) = served {
        tracing::warn!(%error, "admin listener failed");
    }
}

/// OpenMetrics to scrapers that ask for it (Prometheus), the classic text format otherwise.
async fn metrics_text(
    State(state): State<Arc<ProxyState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    match state.observer.metrics() {
        Some(m) if openmetrics => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            m.encode(),
        ),
        Some(m) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.encode_classic(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics are off\n".to_string(),
        ),
    }
}

async fn ready(State(state): State<Arc<ProxyState>>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}
