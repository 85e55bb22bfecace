//! The HTTP side of one Loki endpoint: the client (built by `export::http_client`), the fixed
//! push headers, and classification of answers into delivered / retry / refused.
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::sender`).

use std::time::SystemTime;

use meshtap_logformat::loki::PUSH_CONTENT_TYPE;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::config::LokiConfig;
use crate::export::http_client::{
    body_for_log, build_http_client, configured_headers, ClientError, USER_AGENT,
};
use crate::export::retry::{parse_retry_after, SendOutcome};

/// A configured Loki push client.
pub struct LokiClient {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
}

impl LokiClient {
    /// Builds the client of `config`; `at` is its config path for errors.
    pub fn new(config: &LokiConfig, at: &str) -> Result<LokiClient, ClientError> {
        let http = build_http_client(&config.tls, config.timeout.get(), at)?;
        let mut headers = configured_headers(
            &config.extra_headers(),
            config.basic_auth.as_ref(),
            config.bearer_token.as_deref(),
            at,
        )?;
        // Fixed protocol headers last: configuration cannot override them. The body is a
        // snappy *block*, which Loki expects of every `application/x-protobuf` push (no
        // `Content-Encoding` needed, as Promtail and Alloy send it).
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static(PUSH_CONTENT_TYPE),
        );
        headers.insert(
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static(USER_AGENT),
        );
        Ok(LokiClient {
            http,
            url: config.url.clone(),
            headers,
        })
    }

    /// Posts one snappy-compressed push body. 2xx: delivered; 429, 5xx and network errors:
    /// retry; any other answer (a 400 is Loki's partial success: the valid entries were kept):
    /// refused.
    pub async fn post(&self, body: Vec<u8>) -> SendOutcome {
        let request = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return SendOutcome::Retry {
                    reason: format!("request failed: {e}"),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return SendOutcome::Delivered;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        let body = body_for_log(response).await;
        if retry {
            SendOutcome::Retry {
                reason: format!("HTTP {status}: {}", body.trim()),
                retry_after,
            }
        } else {
            SendOutcome::Refused {
                status: status.as_u16(),
                body,
            }
        }
    }
}
