//! `POST /v1/reports`: authentication, size limits, decoding and validation, with the status
//! codes of the report protocol (204, 400 with a text reason, 401, 403, 413, 503). A 204 is a
//! promise: it is sent only once every sample of the report is kept as configured (in the
//! spool, and on the disk with `spool.sync: always`); a report that cannot be kept is answered
//! 503.
//!
//! Owns the HTTP mapping and result counting; everything after validation is
//! [`super::accept::Ingestor`]'s.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use meshtap_report::DecodeError;

use super::accept::{Acceptance, Ingestor};
use super::auth::TokenCheck;
use super::identity::IdentityCheck;
use crate::ops::metrics::{ReportResult, SinkMetrics};

/// Shared state of the report handler.
pub struct ReportEndpoint {
    pub tokens: TokenCheck,
    pub identity: IdentityCheck,
    pub max_body_bytes: usize,
    pub max_decoded_bytes: usize,
    pub ingestor: Arc<Ingestor>,
    pub metrics: Arc<SinkMetrics>,
}

fn answer(
    metrics: &SinkMetrics,
    result: ReportResult,
    status: StatusCode,
    reason: String,
) -> Response {
    metrics.count_report(result);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    tracing::debug!(result = result.as_str(), %reason, "report refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        reason + "\n",
    )
        .into_response()
}

/// The handler of [`meshtap_report::REPORT_PATH`].
pub async fn post_report(
    State(endpoint): State<Arc<ReportEndpoint>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let m = &endpoint.metrics;
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !endpoint.tokens.allows(authorization) {
        return answer(
            m,
            ReportResult::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "missing or unknown bearer token".into(),
        );
    }
    let limit = endpoint.max_body_bytes;
    let too_large = || format!("report body over the limit of {limit} bytes");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return answer(
            m,
            ReportResult::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            too_large(),
        );
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) if crate::serve::is_body_read_timeout(&e) => {
            return (StatusCode::REQUEST_TIMEOUT, format!("{e}\n")).into_response()
        }
        Err(_) => {
            return answer(
                m,
                ReportResult::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                too_large(),
            )
        }
    };
    let report = match meshtap_report::decode(&bytes, endpoint.max_decoded_bytes) {
        Ok(report) => report,
        Err(e @ DecodeError::TooLarge { .. }) => {
            return answer(
                m,
                ReportResult::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                e.to_string(),
            )
        }
        Err(e) => {
            return answer(
                m,
                ReportResult::BadBody,
                StatusCode::BAD_REQUEST,
                e.to_string(),
            )
        }
    };
    if let Err(e) = meshtap_report::validate(&report) {
        return answer(
            m,
            ReportResult::Invalid,
            StatusCode::BAD_REQUEST,
            format!("invalid report: {e}"),
        );
    }
    if let Err(refusal) = endpoint.identity.check(&headers, &report) {
        let reason = refusal.to_string();
        return answer(m, ReportResult::Forbidden, StatusCode::FORBIDDEN, reason);
    }
    match endpoint.ingestor.accept(&report) {
        // Counted and dropped but answered 204: a late duplicate the filter must not retry.
        Acceptance::OutOfOrder => answer(
            m,
            ReportResult::OutOfOrder,
            StatusCode::NO_CONTENT,
            String::new(),
        ),
        Acceptance::Refused { endpoint, why } => answer(
            m,
            ReportResult::NotStored,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("report not accepted: remote-write endpoint {endpoint:?}: {why}"),
        ),
        Acceptance::Accepted(receipt) => match receipt.kept().await {
            Ok(()) => answer(
                m,
                ReportResult::Accepted,
                StatusCode::NO_CONTENT,
                String::new(),
            ),
            Err(e) => answer(
                m,
                ReportResult::NotStored,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("report taken but not kept as promised: {e}"),
            ),
        },
    }
}
