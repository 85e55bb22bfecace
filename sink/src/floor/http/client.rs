//! HTTP client setup shared by every push exporter and the scraper: TLS (extra CA, client
//! certificate, skip-verify), the `Authorization` header from basic auth or a bearer token, and
//! extra headers; one push endpoint's client ([`PushClient`]).
//!
//! Owns building a `reqwest::Client` and a header map from config, and sending one push with the
//! shared classification of its answer ([`send_classified`]). It knows no protocol headers (each
//! exporter passes its own, set last so config cannot override them) and never sleeps or
//! retries.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::connection::{BasicAuth, Connection};
use super::retry::{parse_retry_after, SendOutcome};
use crate::floor::HttpUrl;

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("meshtap/", env!("CARGO_PKG_VERSION"));

/// Most bytes of a refusal body kept for the log.
pub const MAX_LOGGED_BODY: usize = 4096;

/// Why an endpoint client could not be built. Each message includes its cause (none is
/// chained as a `source`, so a printed chain shows each cause once).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{at}: cannot read {path}: {error}")]
    Read {
        at: String,
        path: String,
        error: std::io::Error,
    },
    #[error("{at}: {message}")]
    Setup { at: String, message: String },
}

pub fn setup_error(at: &str, message: impl std::fmt::Display) -> ClientError {
    ClientError::Setup {
        at: at.to_owned(),
        message: message.to_string(),
    }
}

fn read(at: &str, path: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|error| ClientError::Read {
        at: at.to_owned(),
        path: path.to_owned(),
        error,
    })
}

/// `tls:` of an endpoint, `tls_config:` of a scrape job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM bundle of CAs to trust (in addition to the system roots).
    pub ca_file: Option<String>,
    /// PEM client certificate (with `key_file`) for mutual TLS.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// The check serde cannot express; `at` is the section's path (like `logs[0].tls`).
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(format!("{at}: cert_file and key_file go together"));
        }
        Ok(())
    }
}

/// A client with `timeout` per request and the TLS settings of `tls`; `at` is the config path.
pub fn build_http_client(
    tls: &TlsConfig,
    timeout: Duration,
    at: &str,
) -> Result<reqwest::Client, ClientError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(USER_AGENT);
    let builder = with_tls(builder, tls, &format!("{at}.tls"))?;
    builder.build().map_err(|e| setup_error(at, e))
}

/// Applies `tls` to a client builder: extra CAs, a client certificate, skip-verify; `at` is
/// the TLS section's path for errors.
pub fn with_tls(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsConfig,
    at: &str,
) -> Result<reqwest::ClientBuilder, ClientError> {
    if let Some(ca) = &tls.ca_file {
        let pem = read(at, ca)?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| setup_error(&format!("{at}.ca_file"), e))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = read(at, cert)?;
        pem.push(b'\n');
        pem.extend(read(at, key)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| setup_error(&format!("{at}.cert_file"), e))?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// Configured headers plus `Authorization` (basic auth wins over a bearer token; the config
/// checks refuse both together).
pub fn configured_headers(
    extra: &BTreeMap<String, String>,
    basic_auth: Option<&BasicAuth>,
    bearer_token: Option<&str>,
    at: &str,
) -> Result<HeaderMap, ClientError> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| setup_error(&format!("{at}.headers.{name}"), e))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| setup_error(&format!("{at}.headers.{name}"), e))?;
        headers.insert(header, value);
    }
    let auth = match (basic_auth, bearer_token) {
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
    Ok(headers)
}

/// One push endpoint's client: its URL, its configured headers and the protocol's fixed ones.
pub struct PushClient {
    http: reqwest::Client,
    url: HttpUrl,
    headers: HeaderMap,
}

impl PushClient {
    /// The client of `connection` with `timeout` per request; the protocol's `fixed` headers are
    /// set last, so configuration cannot override them; `at` is the config path for errors.
    pub fn new(
        connection: &Connection<'_>,
        timeout: Duration,
        fixed: &[(&'static str, &'static str)],
        at: &str,
    ) -> Result<PushClient, ClientError> {
        let http = build_http_client(connection.tls, timeout, at)?;
        let mut headers = configured_headers(
            &connection.extra_headers(),
            connection.basic_auth,
            connection.bearer_token,
            at,
        )?;
        for (name, value) in fixed {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Ok(PushClient {
            http,
            url: connection.url.clone(),
            headers,
        })
    }

    /// Posts one body (with `Retry-Attempt: <attempt>` when `attempt` > 0) and classifies the
    /// answer with [`send_classified`] and `retryable`.
    pub async fn post(
        &self,
        body: Bytes,
        attempt: Option<u32>,
        retryable: impl Fn(StatusCode) -> bool,
    ) -> SendOutcome {
        let mut request = self
            .http
            .post(self.url.as_str())
            .headers(self.headers.clone())
            .body(body);
        if let Some(attempt) = attempt.filter(|a| *a > 0) {
            request = request.header("Retry-Attempt", attempt.to_string());
        }
        send_classified(request, retryable).await
    }
}

/// Reads an answer's body for the log, cut to [`MAX_LOGGED_BODY`] bytes.
pub async fn body_for_log(response: reqwest::Response) -> String {
    let mut body = response.text().await.unwrap_or_default();
    if body.len() > MAX_LOGGED_BODY {
        let mut cut = MAX_LOGGED_BODY;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    body
}

/// Standard base64 (RFC 4648, padded), for the basic-auth header.
pub fn base64_encode(input: &[u8]) -> String {
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

/// A failed request in words, its causes included once each, without the request's URL (its
/// user info is a credential).
pub fn request_error_text(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

/// Sends a push request and classifies the answer the way every exporter retries: 2xx is
/// delivered; a network error is retried; otherwise `retryable(status)` decides between a
/// retry (with the answer's `Retry-After`) and a refusal (its body kept for the log).
pub async fn send_classified(
    request: reqwest::RequestBuilder,
    retryable: impl Fn(StatusCode) -> bool,
) -> SendOutcome {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return SendOutcome::Retry {
                reason: format!("request failed: {}", request_error_text(e)),
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
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let body = body_for_log(response).await;
    if retryable(status) {
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
    fn basic_auth_wins_and_is_sensitive() {
        let basic = BasicAuth {
            username: "user".into(),
            password: "pass".into(),
        };
        let headers =
            configured_headers(&BTreeMap::new(), Some(&basic), Some("t"), "logs[0]").unwrap();
        let auth = headers.get(reqwest::header::AUTHORIZATION).unwrap();
        assert_eq!(auth, "Basic dXNlcjpwYXNz");
        assert!(auth.is_sensitive());
    }
}
