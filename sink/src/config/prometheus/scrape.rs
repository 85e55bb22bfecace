//! One Prometheus `scrape_configs[]` entry and its translation into a scrape job: intervals
//! and timeouts from `global`, authentication, TLS, `static_configs`, one
//! `kubernetes_sd_configs` entry of role `pod`, relabeling.
//!
//! Owns these keys and their Prometheus defaults; it must not discover or scrape.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Global, NotSupported, PromAuthorization, PromBasicAuth, PromTlsConfig};
use crate::floor::{HttpUrl, HumanDuration};
use crate::scrape::config::{
    Authorization, KubernetesSd, PodRole, Scheme, ScrapeBasicAuth, ScrapeJob, StaticConfig,
};
use crate::scrape::relabel::RelabelConfig;

/// `scrape_configs[]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromScrapeConfig {
    job_name: String,
    #[serde(default)]
    scrape_interval: Option<HumanDuration>,
    #[serde(default)]
    scrape_timeout: Option<HumanDuration>,
    #[serde(default = "default_metrics_path")]
    metrics_path: String,
    #[serde(default)]
    scheme: Scheme,
    #[serde(default)]
    honor_labels: bool,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    basic_auth: Option<PromBasicAuth>,
    #[serde(default)]
    authorization: Option<PromAuthorization>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    tls_config: PromTlsConfig,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    kubernetes_sd_configs: Vec<PromKubernetesSd>,
    #[serde(default)]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    honor_timestamps: Option<NotSupported>,
    #[serde(default)]
    track_timestamps_staleness: Option<NotSupported>,
    #[serde(default)]
    sample_limit: Option<NotSupported>,
    #[serde(default)]
    label_limit: Option<NotSupported>,
    #[serde(default)]
    target_limit: Option<NotSupported>,
    #[serde(default)]
    body_size_limit: Option<NotSupported>,
    #[serde(default)]
    scrape_protocols: Option<NotSupported>,
    #[serde(default)]
    proxy_url: Option<NotSupported>,
    #[serde(default)]
    oauth2: Option<NotSupported>,
    #[serde(default)]
    follow_redirects: Option<NotSupported>,
    #[serde(default)]
    enable_http2: Option<NotSupported>,
    #[serde(default)]
    file_sd_configs: Option<NotSupported>,
    #[serde(default)]
    dns_sd_configs: Option<NotSupported>,
    #[serde(default)]
    http_sd_configs: Option<NotSupported>,
    #[serde(default)]
    consul_sd_configs: Option<NotSupported>,
    #[serde(default)]
    ec2_sd_configs: Option<NotSupported>,
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

/// `kubernetes_sd_configs[]`: role `pod`, optionally limited to namespaces; the API server
/// from `api_server` or the pod's service account.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromKubernetesSd {
    role: String,
    #[serde(default)]
    namespaces: PromNamespaces,
    #[serde(default)]
    api_server: Option<HttpUrl>,
    #[serde(default)]
    selectors: Option<NotSupported>,
    #[serde(default)]
    attach_metadata: Option<NotSupported>,
    #[serde(default)]
    kubeconfig_file: Option<NotSupported>,
    #[serde(default)]
    basic_auth: Option<NotSupported>,
    #[serde(default)]
    authorization: Option<NotSupported>,
    #[serde(default)]
    bearer_token_file: Option<NotSupported>,
    #[serde(default)]
    tls_config: Option<NotSupported>,
    #[serde(default)]
    proxy_url: Option<NotSupported>,
}

/// `namespaces:` of a Kubernetes SD config.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromNamespaces {
    names: Vec<String>,
    own_namespace: Option<NotSupported>,
}

impl PromKubernetesSd {
    fn translate(&self, at: &str) -> Result<KubernetesSd, String> {
        if self.role != "pod" {
            return Err(format!(
                "{at}.role: {:?} not supported by meshtap (only \"pod\")",
                self.role
            ));
        }
        Ok(KubernetesSd {
            role: PodRole::Pod,
            namespaces: self.namespaces.names.clone(),
            api_server: self.api_server.clone(),
        })
    }
}

impl PromScrapeConfig {
    /// The scrape job this entry stands for; `at` is its path.
    pub fn translate(&self, global: &Global, at: &str) -> Result<ScrapeJob, String> {
        let interval = self.scrape_interval.or(global.scrape_interval);
        let timeout = self.scrape_timeout.or(global.scrape_timeout);
        if let (Some(interval), Some(timeout)) = (interval, self.scrape_timeout) {
            if timeout.get() > interval.get() {
                return Err(format!(
                    "{at}.scrape_timeout: {timeout} is greater than scrape_interval {interval}"
                ));
            }
        }
        let kubernetes_sd = match self.kubernetes_sd_configs.as_slice() {
            [] => None,
            [sd] => Some(sd.translate(&format!("{at}.kubernetes_sd_configs[0]"))?),
            _ => {
                return Err(format!(
                    "{at}.kubernetes_sd_configs: more than one entry not supported by meshtap (use one job per entry)"
                ))
            }
        };
        if kubernetes_sd.is_some() && !self.static_configs.is_empty() {
            return Err(format!(
                "{at}: static_configs together with kubernetes_sd_configs not supported by meshtap (use two jobs)"
            ));
        }
        let job = ScrapeJob {
            name: self.job_name.clone(),
            interval,
            timeout,
            scheme: self.scheme,
            metrics_path: self.metrics_path.clone(),
            tls_config: self.tls_config.translate(),
            bearer_token_file: self.bearer_token_file.clone(),
            bearer_token: self.bearer_token.clone(),
            basic_auth: self.basic_auth.as_ref().map(|b| ScrapeBasicAuth {
                username: b.username.clone(),
                password: b.password.clone(),
                password_file: b.password_file.clone(),
            }),
            authorization: self.authorization.as_ref().map(|a| Authorization {
                kind: a.kind.clone(),
                credentials: a.credentials.clone(),
                credentials_file: a.credentials_file.clone(),
            }),
            honor_labels: self.honor_labels,
            params: self.params.clone(),
            static_configs: self.static_configs.clone(),
            kubernetes_sd,
            relabel_configs: self.relabel_configs.clone(),
            metric_relabel_configs: self.metric_relabel_configs.clone(),
        };
        job.check(at)?;
        Ok(job)
    }
}
