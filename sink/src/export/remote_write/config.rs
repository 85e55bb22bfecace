//! One `remote_write[]` entry: endpoint, authentication, TLS, labels and queue tuning.
//!
//! Owns the keys, defaults and cross-key checks; the client, queue and retry code read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::floor::http::Connection;
use crate::floor::http::{BasicAuth, TlsConfig};
use crate::floor::relabel::RelabelConfig;
use crate::floor::{HttpUrl, HumanDuration};

/// Headers every remote-write request carries; config cannot override them.
pub const FIXED_HEADERS: [&str; 4] = [
    "content-encoding",
    "content-type",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// `remote_write[i]:` — one Prometheus remote-write 1.0 endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Name in logs and self-metrics (`endpoint` label); defaults to the URL without its user
    /// info.
    #[serde(default)]
    pub name: Option<String>,
    /// For example `http://mimir:9009/api/v1/push`.
    pub url: HttpUrl,
    /// Extra request headers (for example `X-Scope-OrgID`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Shorthand for the `X-Scope-OrgID` header (Mimir, Cortex, Loki tenants).
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Labels added to every series sent here (a series' own label of the same name wins).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Rules applied to every series sent here (after `external_labels` are added, as in
    /// Prometheus); a series they drop is not sent to this endpoint.
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Send TYPE/HELP metadata (once per `metadata_interval` and when a family appears).
    #[serde(default = "default_true")]
    pub send_metadata: bool,
    #[serde(default = "default_metadata_interval")]
    pub metadata_interval: HumanDuration,
    /// Timeout of one HTTP request.
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: HumanDuration,
    #[serde(default)]
    pub queue: QueueConfig,
}

fn default_true() -> bool {
    true
}

fn default_metadata_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_remote_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// `remote_write[i].queue:` — batching, lanes, retries and memory bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// A partial batch is sent after waiting this long.
    pub batch_send_deadline: HumanDuration,
    /// Parallel senders; reported series are sharded onto lanes by label hash, scraped series
    /// by target (order kept per series either way).
    pub lanes: usize,
    pub min_backoff: HumanDuration,
    pub max_backoff: HumanDuration,
    /// Retry 429 and 529 answers (otherwise they are dropped like other 4xx).
    pub retry_on_429: bool,
    /// While retrying, drop samples older than this; `0s` keeps them however old.
    pub max_sample_age: HumanDuration,
    /// Most samples held for this endpoint; above it the oldest reported batches are dropped
    /// and scraped samples follow `when_full`.
    pub capacity: usize,
    /// What a full queue does to scraped samples.
    pub when_full: WhenFull,
}

/// `remote_write[i].queue.when_full`: how scraped samples meet a full queue. Reported samples
/// always drop the oldest batches (a report is answered at once and cannot wait).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Scrapes wait for room: nothing is lost while the endpoint is slow, but an endpoint that
    /// stays down holds up scraping, for every endpoint.
    #[default]
    Block,
    /// Scrapes never wait for this endpoint: its oldest batches are dropped (counted as
    /// `reason="queue_full"`), so a secondary endpoint that is down cannot stall the others.
    DropOldest,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_samples_per_send: 2000,
            batch_send_deadline: HumanDuration::from_secs(5),
            lanes: 4,
            min_backoff: HumanDuration::from_millis(30),
            max_backoff: HumanDuration::from_secs(5),
            retry_on_429: true,
            max_sample_age: HumanDuration::from_secs(0),
            capacity: 200_000,
            when_full: WhenFull::Block,
        }
    }
}

impl RemoteWriteConfig {
    /// The `endpoint` label and log name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.url.redacted())
    }

    /// The connection settings shared with the other push endpoints.
    pub fn connection(&self) -> Connection<'_> {
        Connection {
            url: &self.url,
            headers: &self.headers,
            tenant_id: self.tenant_id.as_deref(),
            basic_auth: self.basic_auth.as_ref(),
            bearer_token: self.bearer_token.as_deref(),
            tls: &self.tls,
        }
    }

    /// Headers to send besides the fixed ones: configured headers, then the tenant shorthand.
    pub fn extra_headers(&self) -> BTreeMap<String, String> {
        self.connection().extra_headers()
    }

    /// Rules serde cannot express; `at` is this entry's path, like `remote_write[0]`.
    pub fn check(&self, at: &str) -> Result<(), String> {
        self.connection()
            .check(at, &FIXED_HEADERS, "remote-write")?;
        for name in self.external_labels.keys() {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__")
                && name != "le";
            if !valid {
                return Err(format!(
                    "{at}.external_labels.{name}: not a valid label name"
                ));
            }
        }
        for (r, rule) in self.write_relabel_configs.iter().enumerate() {
            rule.check()
                .map_err(|e| format!("{at}.write_relabel_configs[{r}]: {e}"))?;
        }
        if self.metadata_interval.is_zero() {
            return Err(format!("{at}.metadata_interval: must be greater than 0"));
        }
        if self.remote_timeout.is_zero() {
            return Err(format!("{at}.remote_timeout: must be greater than 0"));
        }
        let q = &self.queue;
        if q.max_samples_per_send == 0 {
            return Err(format!(
                "{at}.queue.max_samples_per_send: must be greater than 0"
            ));
        }
        if q.lanes == 0 || q.lanes > 256 {
            return Err(format!("{at}.queue.lanes: must be between 1 and 256"));
        }
        if q.batch_send_deadline.is_zero() {
            return Err(format!(
                "{at}.queue.batch_send_deadline: must be greater than 0"
            ));
        }
        if q.min_backoff.is_zero() || q.min_backoff > q.max_backoff {
            return Err(format!(
                "{at}.queue.min_backoff: must be greater than 0 and at most max_backoff"
            ));
        }
        if q.capacity < q.max_samples_per_send {
            return Err(format!(
                "{at}.queue.capacity: must be at least max_samples_per_send"
            ));
        }
        Ok(())
    }
}
