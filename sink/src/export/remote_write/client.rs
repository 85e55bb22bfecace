//! The remote-write protocol's side of one POST: its fixed headers and which answers it
//! retries, on the shared [`PushClient`].
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::batch_sender`).

use bytes::Bytes;
use reqwest::StatusCode;

use super::config::RemoteWriteConfig;
pub use crate::floor::http::client::{ClientError, PushClient, USER_AGENT};
pub use crate::floor::http::SendOutcome;

/// A configured endpoint client.
pub struct RemoteWriteClient {
    push: PushClient,
    retry_on_429: bool,
}

impl RemoteWriteClient {
    /// Builds the client of `config`; `at` is its config path for errors.
    pub fn new(config: &RemoteWriteConfig, at: &str) -> Result<RemoteWriteClient, ClientError> {
        let fixed = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("user-agent", USER_AGENT),
            ("x-prometheus-remote-write-version", "0.1.0"),
        ];
        let push = PushClient::new(
            &config.connection(),
            config.remote_timeout.get(),
            &fixed,
            at,
        )?;
        Ok(RemoteWriteClient {
            push,
            retry_on_429: config.queue.retry_on_429,
        })
    }

    /// Posts one compressed body; `attempt` > 0 adds `Retry-Attempt`. 5xx (but 529) and network
    /// errors are retried, 429 and 529 only with `retry_on_429`.
    pub async fn post(&self, body: Bytes, attempt: u32) -> SendOutcome {
        let retry_on_429 = self.retry_on_429;
        self.push
            .post(body, Some(attempt), move |status| {
                let rate_limited =
                    status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529;
                status.is_server_error() && status.as_u16() != 529 || (rate_limited && retry_on_429)
            })
            .await
    }
}
