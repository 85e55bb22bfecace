//! Log files found the way Alloy's `discovery.kubernetes` → `discovery.relabel` →
//! `loki.source.file` (or Promtail) finds them: pods from the same watch as scraping (role
//! `pod`), relabeled by `log_files.relabel_configs`; each target that keeps a `__path__` (a
//! pattern such as `/var/log/pods/*<uid>/<container>/*.log`) names its files, and its labels
//! not starting with `__` are the stream labels of those files. A pod labelled `app=ztunnel`
//! (ztunnel's DaemonSet selector) gets its files read as ztunnel's connection records.
//!
//! Owns the discovered labels → log targets rule and which target a file belongs to. It must
//! not read files (the tailer does) nor talk to the API server itself.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::glob::segment_matches;
use crate::scrape::config::KubernetesSd;
use crate::scrape::kubernetes::watch_pods;
use crate::scrape::relabel::{relabel, Labels, RelabelConfig};

/// Files to tail and the stream labels they get.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogTarget {
    /// Absolute pattern; `*` and `?` within one path segment.
    pub pattern: String,
    /// Sorted, without `__` labels.
    pub labels: Vec<(String, String)>,
    /// The pod is a ztunnel (label `app=ztunnel` before relabeling): its files hold ztunnel's
    /// connection records, not Envoy's access logs, though its container is also `istio-proxy`.
    pub ztunnel: bool,
}

/// The discovered label naming a ztunnel pod (istio/istio `manifests/charts/ztunnel`: the
/// DaemonSet's selector `app: ztunnel`).
const ZTUNNEL_POD_LABEL: (&str, &str) = ("__meta_kubernetes_pod_label_app", "ztunnel");

/// The current targets; `None` until the first pod list.
pub type LogTargets = watch::Receiver<Option<Arc<Vec<LogTarget>>>>;

/// The log targets of discovered label sets: relabeled, those without an absolute
/// `__path__` left out, duplicates (one per container port) merged.
pub fn log_targets(discovered: Vec<Labels>, rules: &[RelabelConfig]) -> Vec<LogTarget> {
    let mut targets: Vec<LogTarget> = discovered
        .into_iter()
        .filter_map(|mut labels| {
            let ztunnel = labels
                .iter()
                .any(|(n, v)| (n.as_str(), v.as_str()) == ZTUNNEL_POD_LABEL);
            if !relabel(rules, &mut labels) {
                return None;
            }
            let pattern = labels
                .iter()
                .find(|(n, _)| n == "__path__")
                .map(|(_, v)| v.clone())
                .filter(|p| p.starts_with('/'))?;
            labels.retain(|(n, v)| !n.starts_with("__") && !v.is_empty());
            labels.sort();
            Some(LogTarget {
                pattern,
                labels,
                ztunnel,
            })
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// Starts the pod watch; the receiver holds the latest targets.
pub fn start_discovery(
    sd: KubernetesSd,
    rules: Vec<RelabelConfig>,
) -> (LogTargets, JoinHandle<()>) {
    let (sender, receiver) = watch::channel(None);
    let task = tokio::spawn(watch_pods(sd, "log_files".to_owned(), move |discovered| {
        let targets = log_targets(discovered, &rules);
        tracing::debug!(
            targets = targets.len(),
            "log_files: discovered targets updated"
        );
        sender.send_replace(Some(Arc::new(targets)));
    }));
    (receiver, task)
}

/// Whether `path` is one of the files `pattern` names.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| segment_matches(p.as_bytes(), s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloy_rules_give_a_path_per_container_and_merge_ports() {
        let rules: Vec<RelabelConfig> = serde_yaml::from_str(
            r#"
- {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
- {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}
- {source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name], separator: /, target_label: __path__, replacement: '/var/log/pods/*$1/*.log'}
"#,
        )
        .unwrap();
        let port = |p: &str| -> Labels {
            [
                ("__meta_kubernetes_namespace", "bookinfo"),
                ("__meta_kubernetes_pod_uid", "u-1"),
                ("__meta_kubernetes_pod_container_name", "istio-proxy"),
                ("__address__", p),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
        };
        let targets = log_targets(vec![port("10.0.0.1:15090"), port("10.0.0.1:15021")], &rules);
        assert_eq!(targets.len(), 1, "{targets:?}");
        assert_eq!(targets[0].pattern, "/var/log/pods/*u-1/istio-proxy/*.log");
        assert!(!targets[0].ztunnel);
        assert_eq!(
            targets[0].labels,
            [
                ("container".to_owned(), "istio-proxy".to_owned()),
                ("namespace".to_owned(), "bookinfo".to_owned())
            ]
        );
        assert!(pattern_matches(
            &targets[0].pattern,
            "/var/log/pods/bookinfo_reviews_u-1/istio-proxy/0.log"
        ));
        assert!(!pattern_matches(
            &targets[0].pattern,
            "/var/log/pods/bookinfo_reviews_u-1/app/0.log"
        ));
        let mut ztunnel = port("10.0.0.2:15020");
        ztunnel.push(("__meta_kubernetes_pod_label_app".into(), "ztunnel".into()));
        assert!(log_targets(vec![ztunnel], &rules)[0].ztunnel);
    }
}
