//! The HTTP side of one Loki endpoint: the client (built by `export::http_client`), the fixed
//! push headers, and classification of answers into delivered / retry / refused.
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::sender`).

use meshtap_logformat::loki::PUSH_CONTENT_TYPE;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::config::LokiConfig;
use crate::config::HttpUrl;
use crate::export::http_client::{
    build_http_client, configured_headers, send_classified, ClientError, USER_AGENT,
};
use crate::export::retry::SendOutcome;

/// A configured Loki push client.
pub struct LokiClient {
    http: reqwest::Client,
    url: HttpUrl,
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
            .post(self.url.as_str())
            .headers(self.headers.clone())
            .body(body);
        send_classified(request, |status| {
            status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
        })
        .await
    }
}
