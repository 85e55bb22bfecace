//! One HTTP scrape: `GET` with Prometheus' `Accept` and `X-Prometheus-Scrape-Timeout-Seconds`
//! headers, gzip accepted (and undone), the body read up to a size limit, as the chunks it
//! arrived in (not joined: see `super::chunks`), all within the target's timeout.
//!
//! Owns the HTTP exchange and each job's client (TLS settings, bearer token file); it must not
//! parse the body.

use std::time::Duration;

use super::config::ScrapeJob;
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
    #[error("cannot read bearer_token_file {path}: {error}")]
    Token { path: String, error: std::io::Error },
}

impl From<reqwest::Error> for FetchError {
    fn from(error: reqwest::Error) -> Self {
        FetchError::Request(request_error_text(error))
    }
}

/// A successful scrape's body.
#[derive(Debug)]
pub struct Fetched {
    /// The body, in the chunks the HTTP client handed over.
    pub chunks: Vec<prost::bytes::Bytes>,
    pub content_type: Option<String>,
}

/// How one job's targets are fetched: the HTTP client (with the job's TLS settings) and where
/// its bearer token is read from.
#[derive(Clone, Debug)]
pub struct JobClient {
    http: reqwest::Client,
    bearer_token_file: Option<String>,
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
        let builder = reqwest::Client::builder().user_agent(user_agent).gzip(true);
        let builder = with_tls(builder, &job.tls_config, &format!("{at}.tls_config"))?;
        let http = builder
            .build()
            .map_err(|e| crate::floor::http::client::setup_error(at, e))?;
        Ok(JobClient {
            http,
            bearer_token_file: job.bearer_token_file.clone(),
        })
    }

    /// The `Authorization` value, read from the token file now (tokens rotate).
    fn authorization(&self) -> Result<Option<String>, FetchError> {
        let Some(path) = &self.bearer_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|error| FetchError::Token {
            path: path.clone(),
            error,
        })?;
        Ok(Some(format!("Bearer {}", token.trim())))
    }
}

/// Fetches `url` within `timeout`, refusing bodies over `limit` bytes (decompressed).
pub async fn fetch(
    client: &JobClient,
    url: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Fetched, FetchError> {
    let authorization = client.authorization()?;
    let exchange = async {
        let mut request = client
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            );
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let mut response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut chunks = Vec::new();
        let mut len = 0;
        while let Some(chunk) = response.chunk().await? {
            len += chunk.len();
            if len > limit {
                return Err(FetchError::TooLarge(limit));
            }
            chunks.push(chunk);
        }
        Ok(Fetched {
            chunks,
            content_type,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}
