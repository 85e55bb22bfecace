//! The view's routes: the page (`GET /` and `/view`, with its script and style, all built
//! into the binary), `GET /v1/live` (the JSON the page polls; `log_service` and
//! `log_status` filter the log lines) and `GET /v1/summary` (JSON, or `?format=text` for the
//! terminal table).
//!
//! Owns the HTTP shape of the view only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{render_table, LiveView, LogFilter};

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/view.js");
const STYLE: &str = include_str!("assets/view.css");

/// The view's routes on the main listener.
pub fn routes(view: Arc<LiveView>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/view", get(page))
        .route("/view/view.js", get(script))
        .route("/view/view.css", get(style))
        .route("/v1/live", get(get_live))
        .route("/v1/summary", get(get_summary))
        .with_state(view)
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn script() -> Response {
    let kind = "text/javascript; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], SCRIPT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The live document; an empty filter value means no filter.
async fn get_live(
    State(view): State<Arc<LiveView>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let value = |key: &str| query.get(key).filter(|v| !v.is_empty()).cloned();
    let filter = LogFilter {
        service: value("log_service"),
        status: value("log_status"),
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(view.live(&filter)),
    )
        .into_response()
}

/// The summary handler; `format=text` gives the table, `format=json` or none the JSON.
async fn get_summary(
    State(view): State<Arc<LiveView>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let summary = view.summary();
    match query.get("format").map(String::as_str) {
        None | Some("json") => Json(summary).into_response(),
        Some("text") => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            render_table(&summary),
        )
            .into_response(),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?} (use json or text)\n"),
        )
            .into_response(),
    }
}
