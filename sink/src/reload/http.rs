//! `POST /-/reload`: served only with `reload.http: true`, on the operations listener when
//! there is one; with `reload.token` it needs that bearer token. Answers 200 when the new
//! config runs, 400 with the reason (naming the key) when it was refused, 401 without the token.
//!
//! Owns the route's answer; it must not reload anything itself (it asks the trigger).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::ReloadTrigger;

/// The path, as Prometheus and Alloy serve it.
pub const RELOAD_PATH: &str = "/-/reload";

struct RouteState {
    trigger: ReloadTrigger,
    token: Option<String>,
}

/// The `POST /-/reload` route.
pub fn route(trigger: ReloadTrigger, token: Option<String>) -> Router {
    let state = Arc::new(RouteState { trigger, token });
    Router::new().route(RELOAD_PATH, post(post_reload).with_state(state))
}

async fn post_reload(State(state): State<Arc<RouteState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (StatusCode::UNAUTHORIZED, "reload needs reload.token\n").into_response();
        }
    }
    match state.trigger.reload("POST /-/reload").await {
        Ok(()) => (StatusCode::OK, "config reloaded\n").into_response(),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            format!("config not reloaded: {why}\n"),
        )
            .into_response(),
    }
}
