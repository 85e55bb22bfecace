//! The Loki push protocol's side of one POST: its fixed headers and which answers it retries,
//! on the shared [`PushClient`].
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::sender`).

use bytes::Bytes;
use meshtap_logformat::loki::PUSH_CONTENT_TYPE;
use reqwest::StatusCode;

use super::config::LokiConfig;
use crate::floor::http::client::{ClientError, PushClient, USER_AGENT};
use crate::floor::http::SendOutcome;

/// A configured Loki push client.
pub struct LokiClient {
    push: PushClient,
}

impl LokiClient {
    /// Builds the client of `config`; `at` is its config path for errors.
    pub fn new(config: &LokiConfig, at: &str) -> Result<LokiClient, ClientError> {
        // The body is a snappy *block*, which Loki expects of every `application/x-protobuf`
        // push (no `Content-Encoding` needed, as Promtail and Alloy send it).
        let fixed = [
            ("content-type", PUSH_CONTENT_TYPE),
            ("user-agent", USER_AGENT),
        ];
        let push = PushClient::new(&config.connection(), config.timeout.get(), &fixed, at)?;
        Ok(LokiClient { push })
    }

    /// Posts one snappy-compressed push body. 2xx: delivered; 429, 5xx and network errors:
    /// retry; any other answer (a 400 is Loki's partial success: the valid entries were kept):
    /// refused.
    pub async fn post(&self, body: Bytes) -> SendOutcome {
        self.push
            .post(body, None, |status| {
                status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
            })
            .await
    }
}
