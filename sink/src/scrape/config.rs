//! The `scrape:` config section: jobs (static targets, interval, timeout, path, relabeling),
//! the merge rule between the filter's reports and scraped `istio_*` series, sharding of the
//! targets over the sink's replicas, and the built-in ztunnel job's switch (`ztunnel`).
//!
//! Owns the keys, their defaults and their checks; it must not scrape or convert anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod ztunnel;

pub use ztunnel::{ZtunnelScrape, ZTUNNEL_JOB};

use super::relabel::RelabelConfig;
use crate::floor::http::client::TlsConfig;
use crate::floor::{host_port_problem, HttpUrl, HumanDuration};

/// `scrape:` — pull-based collection next to the filter's reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Default scrape interval of every job.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// Default scrape timeout of every job (at most the job's interval).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Largest response body (after decompression), in bytes; a larger one fails the scrape.
    #[serde(default = "default_body_size_limit")]
    pub body_size_limit: usize,
    /// The jobs; absent = the istiod job alone.
    #[serde(default = "default_jobs")]
    pub jobs: Vec<ScrapeJob>,
    #[serde(default)]
    pub merge: MergeConfig,
    /// Split the targets over the sink's replicas; absent = this replica scrapes every target.
    pub sharding: Option<ShardingConfig>,
    /// The built-in ztunnel job (ambient mode); absent or `enabled: false` = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ztunnel: Option<ZtunnelScrape>,
}

/// `scrape.sharding:` — membership from the EndpointSlices of the sink's headless Service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardingConfig {
    /// The headless Service whose ready endpoints are the replicas sharing the targets.
    pub service: String,
    /// The Service's namespace.
    pub namespace: String,
    /// This replica in the Service's endpoints: its pod name (`targetRef.name`), `hostname` or
    /// one of its addresses (usually `${POD_NAME}` or `${POD_IP}`).
    #[serde(rename = "self")]
    pub member: String,
    /// API server URL; absent = in-cluster service account (or the local kubeconfig).
    pub api_server: Option<HttpUrl>,
}

/// One scrape job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeJob {
    /// The `job` label of the job's series.
    pub name: String,
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// TLS of `https` targets: extra CAs, a client certificate, skip-verify.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// A file whose content is sent as `Authorization: Bearer …`, read at every scrape (so
    /// rotated service-account tokens are picked up).
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// `Authorization: Bearer <bearer_token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// `Authorization: Basic …`; a `password_file` is read at every scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<ScrapeBasicAuth>,
    /// `Authorization: <type> <credentials>`; a `credentials_file` is read at every scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Keep a scraped label that clashes with a target label as it is (the target's is
    /// dropped) instead of renaming it `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
    /// URL query parameters of every scrape (`__param_<name>` target labels, which relabeling
    /// may change).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Pods discovered from the Kubernetes API (`prometheus.io/*` annotations).
    pub kubernetes_sd: Option<KubernetesSd>,
    /// Applied to each target's labels before it is scraped.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Applied to each scraped series before it is exported.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// `http` or `https`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Fixed targets (`host:port`) sharing extra target labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `basic_auth:` of a scrape job: the password inline or in a file read at every scrape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeBasicAuth {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// `authorization:` of a scrape job: `Authorization: <type> <credentials>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type", default = "default_authorization_type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
}

fn default_authorization_type() -> String {
    "Bearer".to_owned()
}

/// What pod discovery makes of a pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodRole {
    /// meshtap's shorthand: annotated pods only, one target each at their annotated port.
    #[default]
    Annotated,
    /// Prometheus' `role: pod`: every pod, one target per container port, relabeling decides.
    Pod,
}

/// `kubernetes_sd:` — pod discovery with a watch on the API server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSd {
    pub role: PodRole,
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// API server URL; absent = in-cluster service account (or the local kubeconfig).
    pub api_server: Option<HttpUrl>,
}

/// Which source wins for a pod that both reports (filter) and is scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    /// Scraped `istio_*` series of a pod the filter reports are dropped.
    #[default]
    Filter,
    /// The filter's `istio_*` series of a pod that is a scrape target are dropped at ingest.
    Scrape,
    /// Both are kept (duplicates are the operator's choice).
    Both,
}

/// `scrape.merge:`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MergeConfig {
    pub prefer: Prefer,
    /// A pod counts as reported by the filter for this long after its last accepted report.
    pub report_ttl: HumanDuration,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            prefer: Prefer::Filter,
            report_ttl: HumanDuration::from_secs(60),
        }
    }
}

/// The URL itself is checked at load; user info would not authenticate to the API server.
fn check_api_server(at: &str, url: Option<&HttpUrl>) -> Result<(), String> {
    match url {
        Some(url) if url.has_user_info() => Err(format!(
            "{at}.api_server: user info is not used to authenticate to the API server (remove it; credentials come from the service account or kubeconfig)"
        )),
        _ => Ok(()),
    }
}

/// A static target is `host:port` (or a bare host): no scheme, path, query or user info.
fn check_target(at: &str, target: &str) -> Result<(), String> {
    if target.contains('@') {
        return Err(format!(
            "{at}: user info is not allowed in a target (it would show in the `instance` label); use bearer_token_file"
        ));
    }
    let bad = |why: String| Err(format!("{at}: {target:?} is not host:port ({why})"));
    if target.is_empty() || target.contains(['/', '?', '#']) {
        return bad("a target names no scheme, path or query".to_owned());
    }
    host_port_problem(target).map_or(Ok(()), bad)
}

impl ShardingConfig {
    fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("service", &self.service),
            ("namespace", &self.namespace),
            ("self", &self.member),
        ] {
            if value.is_empty() {
                return Err(format!("scrape.sharding.{key}: must not be empty"));
            }
        }
        check_api_server("scrape.sharding", self.api_server.as_ref())
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(15)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_body_size_limit() -> usize {
    64 << 20
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

/// istiod's own metrics: `istiod.istio-system.svc:15014/metrics`.
pub fn istiod_job() -> ScrapeJob {
    ScrapeJob {
        name: "istiod".to_owned(),
        interval: None,
        timeout: None,
        scheme: Scheme::Http,
        metrics_path: default_metrics_path(),
        tls_config: TlsConfig::default(),
        bearer_token_file: None,
        bearer_token: None,
        basic_auth: None,
        authorization: None,
        honor_labels: false,
        params: BTreeMap::new(),
        static_configs: vec![StaticConfig {
            targets: vec!["istiod.istio-system.svc:15014".to_owned()],
            labels: BTreeMap::new(),
        }],
        kubernetes_sd: None,
        relabel_configs: Vec::new(),
        metric_relabel_configs: Vec::new(),
    }
}

fn default_jobs() -> Vec<ScrapeJob> {
    vec![istiod_job()]
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            interval: default_interval(),
            timeout: default_timeout(),
            body_size_limit: default_body_size_limit(),
            jobs: default_jobs(),
            merge: MergeConfig::default(),
            sharding: None,
            ztunnel: None,
        }
    }
}

impl ScrapeJob {
    /// The job's interval (its own, else the section's).
    pub fn interval(&self, section: &ScrapeConfig) -> std::time::Duration {
        self.interval.unwrap_or(section.interval).get()
    }

    /// The job's timeout (its own, else the section's), never above its interval.
    pub fn timeout(&self, section: &ScrapeConfig) -> std::time::Duration {
        self.timeout
            .unwrap_or(section.timeout)
            .get()
            .min(self.interval(section))
    }
}

impl ScrapeJob {
    /// The job's own rules; `at` is its path (`scrape.jobs[0]`, or where a Prometheus
    /// `scrape_configs` entry came from).
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        if self.interval.is_some_and(HumanDuration::is_zero) {
            return Err(format!("{at}.interval: must be greater than 0"));
        }
        if self.timeout.is_some_and(HumanDuration::is_zero) {
            return Err(format!("{at}.timeout: must be greater than 0"));
        }
        if !self.metrics_path.starts_with('/') {
            return Err(format!("{at}.metrics_path: must start with '/'"));
        }
        self.tls_config.check(&format!("{at}.tls_config"))?;
        self.check_authentication(at)?;
        if self.static_configs.is_empty() && self.kubernetes_sd.is_none() {
            return Err(format!("{at}: a job needs static_configs or kubernetes_sd"));
        }
        if !self.static_configs.is_empty() && self.kubernetes_sd.is_some() {
            return Err(format!(
                "{at}: static_configs and kubernetes_sd exclude each other (use two jobs)"
            ));
        }
        if let Some(sd) = &self.kubernetes_sd {
            check_api_server(&format!("{at}.kubernetes_sd"), sd.api_server.as_ref())?;
        }
        for (s, group) in self.static_configs.iter().enumerate() {
            for (t, target) in group.targets.iter().enumerate() {
                check_target(&format!("{at}.static_configs[{s}].targets[{t}]"), target)?;
            }
        }
        for (kind, rules) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (r, rule) in rules.iter().enumerate() {
                rule.check().map_err(|e| format!("{at}.{kind}[{r}]: {e}"))?;
            }
        }
        Ok(())
    }

    /// One way of authenticating at most, each complete; `at` is the job's path.
    fn check_authentication(&self, at: &str) -> Result<(), String> {
        let set: Vec<&str> = [
            ("basic_auth", self.basic_auth.is_some()),
            ("authorization", self.authorization.is_some()),
            ("bearer_token", self.bearer_token.is_some()),
            ("bearer_token_file", self.bearer_token_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        if set.len() > 1 {
            return Err(format!(
                "{at}: at most one of basic_auth, authorization, bearer_token and bearer_token_file may be set (got {})",
                set.join(", ")
            ));
        }
        if self.bearer_token_file.as_deref() == Some("") {
            return Err(format!("{at}.bearer_token_file: must not be empty"));
        }
        if let Some(basic) = &self.basic_auth {
            if basic.password.is_some() && basic.password_file.is_some() {
                return Err(format!(
                    "{at}.basic_auth: at most one of password and password_file may be set"
                ));
            }
        }
        if let Some(auth) = &self.authorization {
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(format!(
                    "{at}.authorization: at most one of credentials and credentials_file may be set"
                ));
            }
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err(format!(
                    "{at}.authorization.type: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                ));
            }
        }
        Ok(())
    }
}

impl ScrapeConfig {
    /// The section with the switched-on built-in jobs appended to `jobs` (what the stage runs).
    pub fn with_builtin_jobs(&self) -> ScrapeConfig {
        let mut section = self.clone();
        if let Some(ztunnel) = self.ztunnel.as_ref().filter(|z| z.enabled) {
            section.jobs.push(ztunnel.job());
        }
        section
    }

    /// Rules serde cannot express; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("scrape.interval: must be greater than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("scrape.timeout: must be greater than 0".into());
        }
        if self.body_size_limit == 0 {
            return Err("scrape.body_size_limit: must be greater than 0".into());
        }
        if self.merge.report_ttl.is_zero() {
            return Err("scrape.merge.report_ttl: must be greater than 0".into());
        }
        if let Some(sharding) = &self.sharding {
            sharding.check()?;
        }
        if let Some(ztunnel) = self.ztunnel.as_ref().filter(|z| z.enabled) {
            check_api_server("scrape.ztunnel", ztunnel.api_server.as_ref())?;
            if self.jobs.iter().any(|job| job.name == ZTUNNEL_JOB) {
                return Err(format!(
                    "scrape.ztunnel: a job is already named {ZTUNNEL_JOB:?} (rename it or drop the switch)"
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, job) in self.jobs.iter().enumerate() {
            let at = format!("scrape.jobs[{i}]");
            job.check(&at)?;
            if !names.insert(job.name.as_str()) {
                return Err(format!("{at}.name: two jobs are named {:?}", job.name));
            }
        }
        Ok(())
    }
}
