//! Prometheus' own configuration inside the sink's: `prometheus:` (inline) or
//! `prometheus_config: <file>` (a `prometheus.yml`, relative to the sink's config file) with
//! `global`, `scrape_configs` and `remote_write` as Prometheus writes them.
//!
//! Owns Prometheus' key names, their defaults and their translation into the sections' own
//! configs (scrape jobs, remote-write endpoints), so that one code path runs underneath. A key
//! Prometheus has and meshtap does not is refused by its path (`…: not supported by meshtap`),
//! never ignored. It must not scrape, discover or send anything.

mod remote_write;
mod scrape;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::export::remote_write::RemoteWriteConfig;
use crate::floor::http::TlsConfig;
use crate::floor::HumanDuration;
use crate::scrape::config::ScrapeJob;

pub use remote_write::PromRemoteWrite;
pub use scrape::PromScrapeConfig;

/// A Prometheus key meshtap does not implement: any value is refused, naming the key.
#[derive(Clone, Debug, PartialEq)]
pub struct NotSupported;

impl<'de> Deserialize<'de> for NotSupported {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("not supported by meshtap"))
    }
}

/// `prometheus:` — the parts of a `prometheus.yml` the sink runs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub scrape_configs: Vec<PromScrapeConfig>,
    #[serde(default)]
    pub remote_write: Vec<PromRemoteWrite>,
    #[serde(default)]
    rule_files: Option<NotSupported>,
    #[serde(default)]
    scrape_config_files: Option<NotSupported>,
    #[serde(default)]
    alerting: Option<NotSupported>,
    #[serde(default)]
    remote_read: Option<NotSupported>,
    #[serde(default)]
    storage: Option<NotSupported>,
    #[serde(default)]
    tracing: Option<NotSupported>,
    #[serde(default)]
    otlp: Option<NotSupported>,
    #[serde(default)]
    runtime: Option<NotSupported>,
}

/// `global:` — defaults of every scrape config, and labels of every series written. An
/// interval or timeout set neither here nor in the scrape config is the sink's
/// `scrape.interval` / `scrape.timeout` (15s / 10s unless set), not Prometheus' 1m.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Global {
    pub scrape_interval: Option<HumanDuration>,
    pub scrape_timeout: Option<HumanDuration>,
    /// Added to every series sent to the `remote_write` endpoints of this section.
    pub external_labels: BTreeMap<String, String>,
    evaluation_interval: Option<NotSupported>,
    rule_query_offset: Option<NotSupported>,
    query_log_file: Option<NotSupported>,
    scrape_failure_log_file: Option<NotSupported>,
    body_size_limit: Option<NotSupported>,
    sample_limit: Option<NotSupported>,
    scrape_protocols: Option<NotSupported>,
}

/// `tls_config:` as Prometheus writes it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromTlsConfig {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    insecure_skip_verify: bool,
    ca: Option<NotSupported>,
    cert: Option<NotSupported>,
    key: Option<NotSupported>,
    server_name: Option<NotSupported>,
    min_version: Option<NotSupported>,
    max_version: Option<NotSupported>,
}

impl PromTlsConfig {
    fn translate(&self) -> TlsConfig {
        TlsConfig {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
        }
    }
}

/// `basic_auth:` as Prometheus writes it (the username may be left out).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<String>,
    username_file: Option<NotSupported>,
}

/// `authorization:` as Prometheus writes it (`type` defaults to `Bearer`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromAuthorization {
    #[serde(rename = "type", default = "bearer")]
    kind: String,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

/// What a `prometheus:` section adds to the sink.
#[derive(Debug, Default)]
pub struct Translated {
    pub jobs: Vec<ScrapeJob>,
    pub remote_write: Vec<RemoteWriteConfig>,
}

impl PrometheusConfig {
    /// The scrape jobs and remote-write endpoints this section stands for; `taken` are the job
    /// names already in use. Errors name the Prometheus key (`prometheus.scrape_configs[0]…`).
    pub fn translate(&self, taken: &[String]) -> Result<Translated, String> {
        let mut names: Vec<String> = taken.to_vec();
        let mut jobs = Vec::new();
        for (i, config) in self.scrape_configs.iter().enumerate() {
            let at = format!("prometheus.scrape_configs[{i}]");
            let job = config.translate(&self.global, &at)?;
            if names.contains(&job.name) {
                return Err(format!(
                    "{at}.job_name: {:?} is already a scrape job's name",
                    job.name
                ));
            }
            names.push(job.name.clone());
            jobs.push(job);
        }
        let remote_write = self
            .remote_write
            .iter()
            .enumerate()
            .map(|(i, rw)| rw.translate(&self.global, &format!("prometheus.remote_write[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Translated { jobs, remote_write })
    }
}

/// Reads a secret file as Prometheus does (surrounding white space removed).
fn read_secret(at: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|e| format!("{at}: cannot read {path}: {e}"))
}
