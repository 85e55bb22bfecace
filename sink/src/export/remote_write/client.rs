//! The HTTP side of one remote-write endpoint: the client (built by `export::http_client`), the fixed
//! protocol headers, and classification of answers into delivered / retry / refused.
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::retry`).

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::config::RemoteWriteConfig;
use crate::config::HttpUrl;
use crate::export::http_client::{build_http_client, configured_headers, send_classified};
pub use crate::export::http_client::{ClientError, USER_AGENT};
pub use crate::export::retry::SendOutcome;

/// A configured endpoint client.
pub struct RemoteWriteClient {
    http: reqwest::Client,
    url: HttpUrl,
    headers: reqwest::header::HeaderMap,
    retry_on_429: bool,
}

impl RemoteWriteClient {
    /// Builds the client of `config`; `at` is its config path for errors.
    pub fn new(config: &RemoteWriteConfig, at: &str) -> Result<RemoteWriteClient, ClientError> {
        let http = build_http_client(&config.tls, config.remote_timeout.get(), at)?;
        let mut headers = configured_headers(
            &config.extra_headers(),
            config.basic_auth.as_ref(),
            config.bearer_token.as_deref(),
            at,
        )?;
        // Fixed protocol headers last: configuration cannot override them.
        let fixed = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("user-agent", USER_AGENT),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ];
        for (name, value) in fixed {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Ok(RemoteWriteClient {
            http,
            url: config.url.clone(),
            headers,
            retry_on_429: config.queue.retry_on_429,
        })
    }

    /// Posts one compressed body; `attempt` > 0 adds `Retry-Attempt`.
    pub async fn post(&self, body: Vec<u8>, attempt: u32) -> SendOutcome {
        let mut request = self
            .http
            .post(self.url.as_str())
            .headers(self.headers.clone())
            .body(body);
        if attempt > 0 {
            request = request.header("Retry-Attempt", attempt.to_string());
        }
        let retry_on_429 = self.retry_on_429;
        send_classified(request, move |status| {
            let rate_limited = status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529;
            status.is_server_error() && status.as_u16() != 529 || (rate_limited && retry_on_429)
        })
        .await
    }
}
