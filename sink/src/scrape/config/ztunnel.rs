//! `scrape.ztunnel:` — the built-in job for Istio ambient mode's per-node proxy: pods labelled
//! `app=ztunnel` (the DaemonSet's selector, istio/istio `manifests/charts/ztunnel`) in
//! `istio-system`, scraped at their container port named `ztunnel-stats` (15020) on `/metrics`,
//! labelled `namespace`, `pod`, `node` and `app` as Istio's sample Prometheus labels them, so
//! the ztunnel dashboard's `pod=~"ztunnel-.*"` and Kiali's `app="ztunnel"` selectors answer
//! and each series names the node whose traffic it counts.
//!
//! Owns the switch's keys and the job it stands for; scraping is the stage's.

use serde::{Deserialize, Serialize};

use super::{istiod_job, KubernetesSd, PodRole, ScrapeJob};
use crate::floor::HttpUrl;
use crate::scrape::relabel::RelabelConfig;

/// The job's name (and `job` label).
pub const ZTUNNEL_JOB: &str = "ztunnel";

/// Pod discovery's labels → the target: ztunnel pods' stats port, with the labels the ztunnel
/// dashboard and Kiali select on.
const RELABEL_CONFIGS: &str = r#"
- {source_labels: [__meta_kubernetes_pod_label_app], regex: ztunnel, action: keep}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: ztunnel-stats, action: keep}
- {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
- {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
- {source_labels: [__meta_kubernetes_pod_node_name], target_label: node}
- {source_labels: [__meta_kubernetes_pod_label_app], target_label: app}
"#;

/// `scrape.ztunnel:` — `{enabled: true}` scrapes every ztunnel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZtunnelScrape {
    pub enabled: bool,
    /// Where ztunnel runs (Istio installs it in `istio-system`).
    pub namespaces: Vec<String>,
    /// API server URL; absent = in-cluster service account (or the local kubeconfig).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_server: Option<HttpUrl>,
}

impl Default for ZtunnelScrape {
    fn default() -> Self {
        ZtunnelScrape {
            enabled: false,
            namespaces: vec!["istio-system".to_owned()],
            api_server: None,
        }
    }
}

impl ZtunnelScrape {
    /// The job the switch stands for: role `pod` discovery in `namespaces`, the relabeling
    /// above, `/metrics` over HTTP (the istiod job's defaults otherwise).
    pub fn job(&self) -> ScrapeJob {
        let relabel_configs: Vec<RelabelConfig> =
            serde_yaml::from_str(RELABEL_CONFIGS).expect("the built-in rules parse");
        ScrapeJob {
            name: ZTUNNEL_JOB.to_owned(),
            static_configs: Vec::new(),
            kubernetes_sd: Some(KubernetesSd {
                role: PodRole::Pod,
                namespaces: self.namespaces.clone(),
                api_server: self.api_server.clone(),
            }),
            relabel_configs,
            ..istiod_job()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::relabel::{relabel, Labels};

    fn discovered(app: &str, port_name: &str) -> Labels {
        [
            ("__address__", "10.244.1.5:15020"),
            ("__meta_kubernetes_namespace", "istio-system"),
            ("__meta_kubernetes_pod_name", "ztunnel-x7k2p"),
            ("__meta_kubernetes_pod_node_name", "node-1"),
            ("__meta_kubernetes_pod_label_app", app),
            ("__meta_kubernetes_pod_container_port_name", port_name),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn keeps_the_stats_port_of_ztunnel_pods_with_their_node() {
        let job = ZtunnelScrape::default().job();
        assert_eq!(job.metrics_path, "/metrics");
        let sd = job.kubernetes_sd.as_ref().unwrap();
        assert_eq!(sd.namespaces, ["istio-system"]);
        job.check("scrape.ztunnel").unwrap();
        let mut labels = discovered("ztunnel", "ztunnel-stats");
        assert!(relabel(&job.relabel_configs, &mut labels));
        labels.retain(|(n, _)| !n.starts_with("__meta_"));
        labels.sort();
        let want: Labels = [
            ("__address__", "10.244.1.5:15020"),
            ("app", "ztunnel"),
            ("namespace", "istio-system"),
            ("node", "node-1"),
            ("pod", "ztunnel-x7k2p"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(labels, want);
        assert!(!relabel(
            &job.relabel_configs,
            &mut discovered("ztunnel", "dns-tcp")
        ));
        assert!(!relabel(
            &job.relabel_configs,
            &mut discovered("istiod", "ztunnel-stats")
        ));
    }
}
