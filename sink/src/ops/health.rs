//! `GET /healthz`, `GET /readyz` and `GET /metrics`.
//!
//! Owns the readiness flag and these three answers; it must not change sink state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::metrics::SinkMetrics;
use crate::floor::clock::now_ms;

/// Shared state of the operations endpoints.
pub struct OpsState {
    pub metrics: Arc<SinkMetrics>,
    /// Config loaded and listener bound; cleared when shutdown starts.
    pub ready: AtomicBool,
}

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 once the config is loaded and the listener is up, 503 before and during shutdown.
pub async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Self-metrics in the Prometheus text format 0.0.4.
pub async fn metrics(State(state): State<Arc<OpsState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(now_ms()),
    )
        .into_response()
}
