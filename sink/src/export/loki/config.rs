//! One `logs[]` entry: a Loki push endpoint, its authentication, TLS, static stream labels,
//! batching and retry tuning, and how filter-shipped access-log records are rendered.
//!
//! Owns the keys, defaults and cross-key checks; the client, sender and tailer read them.

use std::collections::BTreeMap;

use meshtap_logformat::access::AccessLogEncoding;
use meshtap_logformat::loki::{OversizeLinePolicy, PushBatchConfig, MAX_LABEL_NAMES_PER_SERIES};
use serde::{Deserialize, Serialize};

use crate::floor::http::Connection;
use crate::floor::http::{BasicAuth, TlsConfig};
use crate::floor::{HttpUrl, HumanDuration};

/// Headers every push carries; config cannot override them.
pub const FIXED_HEADERS: [&str; 3] = ["content-encoding", "content-type", "user-agent"];

/// Stream labels the sink sets itself; static labels may not reuse them.
pub const RESERVED_LABELS: [&str; 4] = ["namespace", "pod", "container", "job"];

/// `logs[i]:` — one Loki endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiConfig {
    /// Name in logs and self-metrics (`endpoint` label); defaults to the URL without its user
    /// info.
    #[serde(default)]
    pub name: Option<String>,
    /// For example `http://loki-gateway.loki.svc/loki/api/v1/push`.
    pub url: HttpUrl,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Shorthand for the `X-Scope-OrgID` header.
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Static stream labels added to every stream sent here.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How filter-shipped access-log records are rendered: Istio's `text` or `json` line.
    #[serde(default)]
    pub access_log_format: AccessLogFormat,
    /// Timeout of one HTTP request.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub batch: LokiBatchConfig,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// `logs[i].access_log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    #[default]
    Text,
    Json,
}

impl AccessLogFormat {
    pub fn encoding(self) -> AccessLogEncoding {
        match self {
            AccessLogFormat::Text => AccessLogEncoding::Text,
            AccessLogFormat::Json => AccessLogEncoding::Json,
        }
    }
}

/// `logs[i].batch.oversize_lines`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OversizeLines {
    #[default]
    Truncate,
    Drop,
}

/// `logs[i].batch:` — batching by bytes and time, line limits, retries and memory bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LokiBatchConfig {
    /// A batch is sent once its lines and metadata reach this many bytes.
    pub max_bytes: usize,
    /// A partial batch is sent after waiting this long.
    pub max_wait: HumanDuration,
    /// Loki's `max_line_size`; longer lines are truncated or dropped (counted).
    pub max_line_bytes: usize,
    pub oversize_lines: OversizeLines,
    pub min_backoff: HumanDuration,
    pub max_backoff: HumanDuration,
    /// Filter-shipped entries held for this endpoint; above it new entries are dropped (counted).
    pub capacity: usize,
}

impl Default for LokiBatchConfig {
    fn default() -> Self {
        LokiBatchConfig {
            max_bytes: 1024 * 1024,
            max_wait: HumanDuration::from_secs(1),
            max_line_bytes: 256 * 1024,
            oversize_lines: OversizeLines::Truncate,
            min_backoff: HumanDuration::from_millis(500),
            max_backoff: HumanDuration::from_secs(300),
            capacity: 100_000,
        }
    }
}

impl LokiBatchConfig {
    /// The per-line limits handed to `meshtap_logformat::loki::PushBatch`.
    pub fn push_batch_config(&self) -> PushBatchConfig {
        PushBatchConfig {
            max_line_bytes: self.max_line_bytes,
            oversize_lines: match self.oversize_lines {
                OversizeLines::Truncate => OversizeLinePolicy::Truncate,
                OversizeLines::Drop => OversizeLinePolicy::Drop,
            },
            ..PushBatchConfig::default()
        }
    }
}

impl LokiConfig {
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

    /// Static labels as pairs, in name order.
    pub fn static_labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// Rules serde cannot express; `at` is this entry's path, like `logs[0]`.
    pub fn check(&self, at: &str) -> Result<(), String> {
        self.connection().check(at, &FIXED_HEADERS, "Loki push")?;
        if self.labels.len() + RESERVED_LABELS.len() > MAX_LABEL_NAMES_PER_SERIES {
            return Err(format!(
                "{at}.labels: at most {} static labels (Loki allows {MAX_LABEL_NAMES_PER_SERIES} per stream, {} are the sink's)",
                MAX_LABEL_NAMES_PER_SERIES - RESERVED_LABELS.len(),
                RESERVED_LABELS.len()
            ));
        }
        for (name, value) in &self.labels {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__");
            if !valid {
                return Err(format!("{at}.labels.{name}: not a valid label name"));
            }
            if RESERVED_LABELS.contains(&name.as_str()) {
                return Err(format!("{at}.labels.{name}: set by the sink itself"));
            }
            if value.is_empty() {
                return Err(format!("{at}.labels.{name}: must not be empty"));
            }
        }
        if self.timeout.is_zero() {
            return Err(format!("{at}.timeout: must be greater than 0"));
        }
        let b = &self.batch;
        if b.max_bytes == 0 {
            return Err(format!("{at}.batch.max_bytes: must be greater than 0"));
        }
        if b.max_wait.is_zero() {
            return Err(format!("{at}.batch.max_wait: must be greater than 0"));
        }
        if b.max_line_bytes == 0 {
            return Err(format!("{at}.batch.max_line_bytes: must be greater than 0"));
        }
        if b.min_backoff.is_zero() || b.min_backoff > b.max_backoff {
            return Err(format!(
                "{at}.batch.min_backoff: must be greater than 0 and at most max_backoff"
            ));
        }
        if b.capacity == 0 {
            return Err(format!("{at}.batch.capacity: must be greater than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> LokiConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let config = parse("url: http://loki:3100/loki/api/v1/push");
        assert_eq!(config.check("logs[0]"), Ok(()));
        assert_eq!(config.batch.max_bytes, 1024 * 1024);
        assert_eq!(config.access_log_format, AccessLogFormat::Text);
        let bad = parse("{url: http://l, labels: {pod: x}}");
        assert_eq!(
            bad.check("logs[0]"),
            Err("logs[0].labels.pod: set by the sink itself".into())
        );
        let bad = parse("{url: http://l, headers: {Content-Type: x}}");
        assert!(bad
            .check("logs[1]")
            .unwrap_err()
            .starts_with("logs[1].headers.Content-Type"));
        let bad = parse("{url: http://l, tenant_id: a, headers: {x-scope-orgid: b}}");
        assert!(bad
            .check("logs[0]")
            .unwrap_err()
            .starts_with("logs[0].tenant_id"));
        let too_many: BTreeMap<String, String> =
            (0..12).map(|i| (format!("l{i}"), "v".to_owned())).collect();
        let mut config = parse("url: https://l");
        config.labels = too_many;
        assert!(config
            .check("logs[0]")
            .unwrap_err()
            .starts_with("logs[0].labels: at most 11"));
    }
}
