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
use meshtap_report::{DecodeError, Report};

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

/// How a report was answered: its counted result, status and reason (empty for a 204).
struct Outcome {
    result: ReportResult,
    status: StatusCode,
    reason: String,
}

impl Outcome {
    fn new(result: ReportResult, status: StatusCode, reason: impl Into<String>) -> Outcome {
        Outcome {
            result,
            status,
            reason: reason.into(),
        }
    }

    /// Counts the result and renders the answer.
    fn answer(self, metrics: &SinkMetrics) -> Response {
        metrics.count_report(self.result);
        if self.status == StatusCode::NO_CONTENT {
            return self.status.into_response();
        }
        tracing::debug!(result = self.result.as_str(), reason = %self.reason, "report refused");
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.reason + "\n",
        )
            .into_response()
    }
}

/// Why a report stopped before it was stored.
enum Stop {
    /// Refused and counted.
    Refused(Outcome),
    /// The client was too slow sending its body: answered, not counted as a report.
    BodyTimeout(String),
}

impl From<Outcome> for Stop {
    fn from(outcome: Outcome) -> Stop {
        Stop::Refused(outcome)
    }
}

/// The handler of [`meshtap_report::REPORT_PATH`]: authorise, read, decode and validate, check
/// the caller's identity, then store and answer once stored.
pub async fn post_report(
    State(endpoint): State<Arc<ReportEndpoint>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let report = async {
        authorize(&endpoint, &headers)?;
        let bytes = read_body(&endpoint, &headers, body).await?;
        let report = decode_valid(&endpoint, &bytes)?;
        endpoint
            .identity
            .check(&headers, &report)
            .map_err(|refusal| {
                Outcome::new(
                    ReportResult::Forbidden,
                    StatusCode::FORBIDDEN,
                    refusal.to_string(),
                )
            })?;
        Ok::<_, Stop>(report)
    };
    match report.await {
        Ok(report) => store(&endpoint, &report).await.answer(&endpoint.metrics),
        Err(Stop::Refused(outcome)) => outcome.answer(&endpoint.metrics),
        Err(Stop::BodyTimeout(reason)) => {
            (StatusCode::REQUEST_TIMEOUT, format!("{reason}\n")).into_response()
        }
    }
}

/// A known bearer token, when tokens are configured.
fn authorize(endpoint: &ReportEndpoint, headers: &HeaderMap) -> Result<(), Outcome> {
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if endpoint.tokens.allows(authorization) {
        return Ok(());
    }
    Err(Outcome::new(
        ReportResult::Unauthorized,
        StatusCode::UNAUTHORIZED,
        "missing or unknown bearer token",
    ))
}

/// The body, refused over `max_body_bytes` (by its declared length first).
async fn read_body(
    endpoint: &ReportEndpoint,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, Stop> {
    let limit = endpoint.max_body_bytes;
    let too_large = || {
        Outcome::new(
            ReportResult::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("report body over the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large().into());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if crate::serve::is_body_read_timeout(&e) => Err(Stop::BodyTimeout(e.to_string())),
        Err(_) => Err(too_large().into()),
    }
}

/// The decoded report, within `max_decoded_bytes` and valid.
fn decode_valid(endpoint: &ReportEndpoint, bytes: &[u8]) -> Result<Report, Outcome> {
    let report =
        meshtap_report::decode(bytes, endpoint.max_decoded_bytes).map_err(|e| match e {
            DecodeError::TooLarge { .. } => Outcome::new(
                ReportResult::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                e.to_string(),
            ),
            e => Outcome::new(
                ReportResult::BadBody,
                StatusCode::BAD_REQUEST,
                e.to_string(),
            ),
        })?;
    meshtap_report::validate(&report).map_err(|e| {
        Outcome::new(
            ReportResult::Invalid,
            StatusCode::BAD_REQUEST,
            format!("invalid report: {e}"),
        )
    })?;
    Ok(report)
}

/// Hands the report to the ingestor and waits until its samples are kept as promised.
async fn store(endpoint: &ReportEndpoint, report: &Report) -> Outcome {
    match endpoint.ingestor.accept(report) {
        // Counted and dropped but answered 204: a late duplicate the filter must not retry.
        Acceptance::OutOfOrder => {
            Outcome::new(ReportResult::OutOfOrder, StatusCode::NO_CONTENT, "")
        }
        Acceptance::Refused { endpoint, why } => Outcome::new(
            ReportResult::NotStored,
            StatusCode::SERVICE_UNAVAILABLE,
            format!("report not accepted: remote-write endpoint {endpoint:?}: {why}"),
        ),
        Acceptance::Accepted(receipt) => match receipt.kept().await {
            Ok(()) => Outcome::new(ReportResult::Accepted, StatusCode::NO_CONTENT, ""),
            Err(e) => Outcome::new(
                ReportResult::NotStored,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("report taken but not kept as promised: {e}"),
            ),
        },
    }
}
