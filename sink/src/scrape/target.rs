//! Scrape targets: what a job's static targets become after target relabeling — the URL to
//! fetch and the target labels (`job`, `instance`, the group's labels) every series gets.
//!
//! Owns the Prometheus target-label rules (`__address__`, `__scheme__`, `__metrics_path__`,
//! `__param_<name>` for the URL's query, `instance` defaulting to the address, `__`-prefixed
//! labels removed after relabeling). It must not fetch anything.

use std::sync::Arc;
use std::time::Duration;

use super::config::{ScrapeConfig, ScrapeJob};
use super::relabel::{relabel, Labels, RelabelConfig};
use crate::floor::PodKey;
use meshtap_remotewrite::series::Text;

/// One thing to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub job: Text,
    pub url: String,
    /// Sorted by name, unique, non-empty values; includes `job` and `instance`.
    pub labels: Vec<(Text, Text)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub metric_relabel_configs: Arc<[RelabelConfig]>,
    /// Scraped labels win over target labels of the same name.
    pub honor_labels: bool,
}

impl Target {
    /// The pod the target belongs to, when its `namespace` and `pod` labels say so.
    pub fn pod(&self) -> Option<PodKey> {
        let get = |name: &str| {
            self.labels
                .iter()
                .find(|(n, _)| &**n == name)
                .map(|(_, v)| v.to_string())
        };
        Some(PodKey::new(get("namespace")?, get("pod")?))
    }
}

/// The targets of one job's static groups (relabeled; dropped ones left out).
pub fn static_targets(section: &ScrapeConfig, job: &ScrapeJob) -> Vec<Target> {
    let metric_rules: Arc<[RelabelConfig]> = job.metric_relabel_configs.clone().into();
    let mut targets = Vec::new();
    for group in &job.static_configs {
        for address in &group.targets {
            let mut labels: Labels = group
                .labels
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            labels.push(("__address__".into(), address.clone()));
            if let Some(target) = build_target(section, job, labels, &metric_rules) {
                targets.push(target);
            }
        }
    }
    targets
}

fn set_default(labels: &mut Labels, name: &str, value: &str) {
    if !labels.iter().any(|(n, _)| n == name) {
        labels.push((name.to_owned(), value.to_owned()));
    }
}

fn take(labels: &Labels, name: &str) -> Option<String> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// A target from its discovered labels (which hold at least `__address__`), or `None` when
/// relabeling drops it or leaves no address.
pub fn build_target(
    section: &ScrapeConfig,
    job: &ScrapeJob,
    mut labels: Labels,
    metric_relabel_configs: &Arc<[RelabelConfig]>,
) -> Option<Target> {
    let interval = job.interval(section);
    let timeout = job.timeout(section);
    set_default(&mut labels, "job", &job.name);
    set_default(&mut labels, "__scheme__", job.scheme.as_str());
    set_default(&mut labels, "__metrics_path__", &job.metrics_path);
    for (name, values) in &job.params {
        if let Some(first) = values.first() {
            set_default(&mut labels, &format!("__param_{name}"), first);
        }
    }
    if !relabel(&job.relabel_configs, &mut labels) {
        return None;
    }
    let address = take(&labels, "__address__").filter(|a| !a.is_empty())?;
    let scheme = take(&labels, "__scheme__").unwrap_or_else(|| job.scheme.as_str().into());
    let path = take(&labels, "__metrics_path__").unwrap_or_else(|| job.metrics_path.clone());
    let query = url_query(job, &labels);
    set_default(&mut labels, "instance", &address);
    let mut kept: Vec<(Text, Text)> = labels
        .into_iter()
        .filter(|(n, v)| !n.starts_with("__") && !v.is_empty())
        .map(|(n, v)| (Text::from(n), Text::from(v)))
        .collect();
    kept.sort();
    kept.dedup_by(|a, b| a.0 == b.0);
    let job_label = kept
        .iter()
        .find(|(n, _)| &**n == "job")
        .map_or_else(|| Text::from(job.name.as_str()), |(_, v)| v.clone());
    Some(Target {
        job: job_label,
        url: format!("{scheme}://{address}{path}{query}"),
        labels: kept,
        interval,
        timeout,
        metric_relabel_configs: metric_relabel_configs.clone(),
        honor_labels: job.honor_labels,
    })
}

/// `?name=value&…` from the job's `params`, each name's first value taken from its
/// `__param_<name>` label as relabeling left it, and `__param_<name>` labels relabeling added;
/// empty without parameters.
fn url_query(job: &ScrapeJob, labels: &Labels) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, values) in &job.params {
        let first = take(labels, &format!("__param_{name}"));
        for value in first.iter().chain(values.iter().skip(1)) {
            query.append_pair(name, value);
        }
    }
    for (label, value) in labels {
        let Some(name) = label.strip_prefix("__param_") else {
            continue;
        };
        if !job.params.contains_key(name) {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_job_scrapes_istiod() {
        let section = ScrapeConfig::default();
        let targets = static_targets(&section, &section.jobs[0]);
        assert_eq!(targets.len(), 1);
        let t = &targets[0];
        assert_eq!(t.url, "http://istiod.istio-system.svc:15014/metrics");
        let labels: Vec<String> = t.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(
            labels,
            ["instance=istiod.istio-system.svc:15014", "job=istiod"]
        );
        assert_eq!(t.interval, Duration::from_secs(15));
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.pod(), None);
    }

    #[test]
    fn relabeling_rewrites_address_path_and_drops_targets() {
        let section: ScrapeConfig = serde_yaml::from_str(
            r#"
jobs:
  - name: pods
    interval: 2s
    timeout: 5s
    static_configs:
      - targets: ["10.0.0.1:8080", "10.0.0.2:8080"]
        labels: {namespace: default, pod: reviews-1}
    relabel_configs:
      - {source_labels: [__address__], regex: '10\.0\.0\.2:.*', action: drop}
      - {source_labels: [__address__], regex: '([^:]+):\d+', replacement: '$1:15020', target_label: __address__}
      - {target_label: __metrics_path__, replacement: /stats/prometheus}
"#,
        )
        .unwrap();
        section.check().unwrap();
        let targets = static_targets(&section, &section.jobs[0]);
        assert_eq!(targets.len(), 1);
        let t = &targets[0];
        assert_eq!(t.url, "http://10.0.0.1:15020/stats/prometheus");
        assert_eq!(
            t.timeout,
            Duration::from_secs(2),
            "timeout capped by interval"
        );
        assert_eq!(t.pod(), Some(PodKey::new("default", "reviews-1")));
        assert!(t
            .labels
            .iter()
            .any(|(n, v)| &**n == "instance" && &**v == "10.0.0.1:15020"));
    }
}
