//! The HTTP side of one remote-write endpoint: TLS and authentication setup, the fixed
//! protocol headers, and classification of answers into delivered / retry / refused.
//!
//! Owns one POST and what its answer means; it never sleeps or loops (see `super::retry`).

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::config::RemoteWriteConfig;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("meshtap/", env!("CARGO_PKG_VERSION"));

/// Most bytes of a refusal body kept for the log.
const MAX_LOGGED_BODY: usize = 4096;

/// Why an endpoint client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{at}: cannot read {path}: {source}")]
    Read {
        at: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{at}: {message}")]
    Setup { at: String, message: String },
}

/// What became of one POST.
#[derive(Debug, PartialEq)]
pub enum SendOutcome {
    Delivered,
    /// 5xx, network error, or 429/529 when retried; `retry_after` from the answer's header.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Other 4xx (or 429/529 when not retried): never retried.
    Refused {
        status: u16,
        body: String,
    },
}

/// A configured endpoint client.
pub struct RemoteWriteClient {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
    retry_on_429: bool,
}

fn setup_error(at: &str, message: impl std::fmt::Display) -> ClientError {
    ClientError::Setup {
        at: at.to_owned(),
        message: message.to_string(),
    }
}

fn read(at: &str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        at: at.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// Parses `Retry-After` as delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RemoteWriteClient {
    /// Builds the client of `config`; `at` is its config path for errors.
    pub fn new(config: &RemoteWriteConfig, at: &str) -> Result<RemoteWriteClient, ClientError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.remote_timeout.get())
            .user_agent(USER_AGENT);
        if let Some(ca) = &config.tls.ca_file {
            let pem = read(at, ca)?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup_error(&format!("{at}.tls.ca_file"), e))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
            let mut pem = read(at, cert)?;
            pem.push(b'\n');
            pem.extend(read(at, key)?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| setup_error(&format!("{at}.tls.cert_file"), e))?;
            builder = builder.identity(identity);
        }
        if config.tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| setup_error(at, e))?;

        let mut headers = HeaderMap::new();
        for (name, value) in config.extra_headers() {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| setup_error(&format!("{at}.headers.{name}"), e))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|e| setup_error(&format!("{at}.headers.{name}"), e))?;
            headers.insert(header, value);
        }
        let auth = match (&config.basic_auth, &config.bearer_token) {
            (Some(basic), _) => Some(format!(
                "Basic {}",
                base64_encode(format!("{}:{}", basic.username, basic.password).as_bytes())
            )),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        if let Some(auth) = auth {
            let mut value = HeaderValue::from_str(&auth)
                .map_err(|e| setup_error(&format!("{at}.basic_auth"), e))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
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
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body);
        if attempt > 0 {
            request = request.header("Retry-Attempt", attempt.to_string());
        }
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
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529;
        let retry = status.is_server_error() && status.as_u16() != 529
            || (rate_limited && self.retry_on_429);
        let mut body = response.text().await.unwrap_or_default();
        if body.len() > MAX_LOGGED_BODY {
            let mut cut = MAX_LOGGED_BODY;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
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

/// Standard base64 (RFC 4648, padded), for the basic-auth header.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("user:pass", "dXNlcjpwYXNz"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), output);
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
