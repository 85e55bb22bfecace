//! `GET /v1/summary` (JSON) and `GET /v1/summary?format=text` (terminal table).
//!
//! Owns the HTTP shape of the view only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{render_table, SummaryView};

/// The summary handler; `format=text` gives the table, `format=json` or none the JSON.
pub async fn get_summary(
    State(view): State<Arc<SummaryView>>,
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
