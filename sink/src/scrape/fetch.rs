//! One HTTP scrape: `GET` with Prometheus' `Accept` and `X-Prometheus-Scrape-Timeout-Seconds`
//! headers, gzip accepted (and undone), the body handed on chunk by chunk as it arrives (to be
//! converted at once: see `super::chunks`) up to a size limit, all within the target's timeout.
//!
//! Plain-HTTP targets are fetched by `super::plain_http` (kept-alive connections that hold no
//! buffer while idle) unless a proxy is set in the environment, the URL carries credentials or
//! the target redirects; HTTPS jobs, proxies and redirects go through the general client
//! (reqwest), which keeps HTTPS connections
//! (a TLS handshake per scrape would cost more) and opens a new plain-HTTP connection per scrape
//! (its idle connections keep the read buffer they last grew, up to ~400 KiB).
//!
//! Owns the HTTP exchange and each job's client (TLS settings, the `Authorization` header from
//! basic auth, `authorization`, a bearer token or a file, files read at every scrape so rotated
//! secrets are used); it must not parse the body.

use std::time::Duration;

use super::config::{Scheme, ScrapeJob};
use super::plain_http::{PlainHttpClient, PlainOutcome, PlainUrl};
use crate::floor::http::base64_encode;
use crate::floor::http::client::{request_error_text, with_tls, ClientError};

/// What Prometheus 2.x asks a target for.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("server answered {0}")]
    Status(u16),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read {key} {path}: {error}")]
    Token {
        key: &'static str,
        path: String,
        error: std::io::Error,
    },
}

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        FetchError::Request(request_error_text(error))
    }
}

/// Where a scrape's body goes, as it arrives.
pub trait BodySink {
    /// The response's `Content-Type`, before the first chunk.
    fn content_type(&mut self, content_type: Option<&str>);
    /// The next piece of the body (decompressed).
    fn chunk(&mut self, chunk: &[u8]);
}

/// A secret given inline or as a file read at every scrape.
#[derive(Clone, Debug)]
enum Secret {
    Inline(String),
    File { key: &'static str, path: String },
}

impl Secret {
    fn of(
        inline: Option<&String>,
        file: Option<&String>,
        file_key: &'static str,
    ) -> Option<Secret> {
        match (inline, file) {
            (_, Some(path)) => Some(Secret::File {
                key: file_key,
                path: path.clone(),
            }),
            (Some(value), None) => Some(Secret::Inline(value.clone())),
            (None, None) => None,
        }
    }

    fn read(&self) -> Result<String, FetchError> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::File { key, path } => std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .map_err(|error| FetchError::Token {
                    key,
                    path: path.clone(),
                    error,
                }),
        }
    }
}

/// The `Authorization` header of a job's scrapes.
#[derive(Clone, Debug)]
enum ScrapeAuth {
    Basic {
        username: String,
        password: Option<Secret>,
    },
    /// `<scheme> <credentials>` (`Bearer` for bearer tokens).
    Scheme {
        scheme: String,
        credentials: Option<Secret>,
    },
}

impl ScrapeAuth {
    fn of(job: &ScrapeJob) -> Option<ScrapeAuth> {
        if let Some(basic) = &job.basic_auth {
            return Some(ScrapeAuth::Basic {
                username: basic.username.clone(),
                password: Secret::of(
                    basic.password.as_ref(),
                    basic.password_file.as_ref(),
                    "basic_auth.password_file",
                ),
            });
        }
        if let Some(auth) = &job.authorization {
            return Some(ScrapeAuth::Scheme {
                scheme: auth.kind.clone(),
                credentials: Secret::of(
                    auth.credentials.as_ref(),
                    auth.credentials_file.as_ref(),
                    "authorization.credentials_file",
                ),
            });
        }
        let bearer = Secret::of(
            job.bearer_token.as_ref(),
            job.bearer_token_file.as_ref(),
            "bearer_token_file",
        )?;
        Some(ScrapeAuth::Scheme {
            scheme: "Bearer".to_owned(),
            credentials: Some(bearer),
        })
    }

    fn header(&self) -> Result<String, FetchError> {
        let read =
            |secret: &Option<Secret>| secret.as_ref().map_or(Ok(String::new()), Secret::read);
        Ok(match self {
            ScrapeAuth::Basic { username, password } => {
                let pair = format!("{username}:{}", read(password)?);
                format!("Basic {}", base64_encode(pair.as_bytes()))
            }
            ScrapeAuth::Scheme {
                scheme,
                credentials,
            } => format!("{scheme} {}", read(credentials)?),
        })
    }
}

/// How one job's targets are fetched: the HTTP client (with the job's TLS settings) and its
/// `Authorization` header.
#[derive(Clone, Debug)]
pub struct JobClient {
    http: reqwest::Client,
    /// Plain-HTTP jobs without a proxy in the environment.
    plain: Option<PlainHttpClient>,
    auth: Option<ScrapeAuth>,
}

impl JobClient {
    /// The client of `job` (the job's config path is `at`). With sharding, the `User-Agent`
    /// names this replica (`meshtap/<version> (member <self>)`), so a target's logs tell which
    /// replica scraped it.
    pub fn new(job: &ScrapeJob, member: Option<&str>, at: &str) -> Result<JobClient, ClientError> {
        let version = concat!("meshtap/", env!("CARGO_PKG_VERSION"));
        let user_agent = match member {
            Some(member) => format!("{version} (member {member})"),
            None => version.to_owned(),
        };
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent.as_str())
            .gzip(true);
        let mut plain = None;
        if job.scheme == Scheme::Http {
            builder = builder.pool_max_idle_per_host(0);
            plain = (!proxy_in_environment()).then(|| PlainHttpClient::new(&user_agent));
        }
        let builder = with_tls(builder, &job.tls_config, &format!("{at}.tls_config"))?;
        let http = builder
            .build()
            .map_err(|e| crate::floor::http::client::setup_error(at, e))?;
        Ok(JobClient {
            http,
            plain,
            auth: ScrapeAuth::of(job),
        })
    }

    /// The `Authorization` value, its files read now (secrets rotate).
    fn authorization(&self) -> Result<Option<String>, FetchError> {
        self.auth.as_ref().map(ScrapeAuth::header).transpose()
    }
}

/// Whether plain-HTTP requests would go through a proxy named in the environment (the general
/// client honours `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`).
fn proxy_in_environment() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Fetches `url` within `timeout` into `body`, refusing bodies over `limit` bytes
/// (decompressed). `plain_url` is `url` as [`PlainUrl::parse`] gave it (a scrape loop parses
/// it once, not at every scrape). After an error `body` holds part of the body at most.
pub async fn fetch(
    client: &JobClient,
    url: &str,
    plain_url: Option<&PlainUrl>,
    timeout: Duration,
    limit: usize,
    body: &mut impl BodySink,
) -> Result<(), FetchError> {
    let mut headers = vec![
        ("accept", ACCEPT.to_owned()),
        (
            "x-prometheus-scrape-timeout-seconds",
            format!("{}", timeout.as_secs_f64()),
        ),
    ];
    if let Some(authorization) = client.authorization()? {
        headers.push(("authorization", authorization));
    }
    let exchange = async {
        if let (Some(plain), Some(target)) = (&client.plain, plain_url) {
            if let PlainOutcome::Done = plain.get(target, &headers, limit, body).await? {
                return Ok(());
            }
        }
        fetch_general(&client.http, url, &headers, limit, body).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

/// The exchange through the general client (TLS, proxies, redirects).
async fn fetch_general(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&'static str, String)],
    limit: usize,
    body: &mut impl BodySink,
) -> Result<(), FetchError> {
    let mut request = http.get(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    body.content_type(content_type);
    let mut len = 0;
    while let Some(chunk) = response.chunk().await? {
        len += chunk.len();
        if len > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.chunk(&chunk);
    }
    Ok(())
}
