//! Kubernetes pod discovery for a job's `kubernetes_sd`: a kube-rs watcher (list, then watch,
//! re-listing with backoff after errors) per configured namespace, or one over all namespaces;
//! every change recomputes the job's targets from the scrapeable pods.
//!
//! Owns the API-server conversation and the pod set; the pod → labels rule is in
//! [`super::pods`], target building in [`super::target`]. It must not scrape.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use super::config::{KubernetesSd, ScrapeConfig, ScrapeJob};
use super::pods::pod_target_labels;
use super::relabel::{Labels, RelabelConfig};
use super::target::build_target;
use super::TargetSet;
use crate::floor::HttpUrl;

/// A pod by `(namespace, name)`.
type PodName = (String, String);

/// A client for `api_server`, else the in-cluster service account (or the local kubeconfig).
pub(super) async fn kube_client(api_server: Option<&HttpUrl>) -> Result<kube::Client, String> {
    let config = match api_server {
        Some(url) => kube::Config::new(
            url.as_str()
                .parse()
                .map_err(|e| format!("api_server {url}: {e}"))?,
        ),
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

fn name_of(pod: &Pod) -> PodName {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Watches pods for `job` until the task is aborted, keeping `targets` current.
pub async fn run_pod_discovery(
    section: Arc<ScrapeConfig>,
    job: ScrapeJob,
    sd: KubernetesSd,
    targets: Arc<TargetSet>,
) {
    let client = match kube_client(sd.api_server.as_ref()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(job = %job.name, %error, "kubernetes_sd: no API client; the job discovers no pods");
            return;
        }
    };
    let apis: Vec<Api<Pod>> = if sd.namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        sd.namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let watchers = apis.into_iter().enumerate().map(|(i, api)| {
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    let mut events = futures_util::stream::select_all(watchers);
    let metric_rules: Arc<[RelabelConfig]> = job.metric_relabel_configs.clone().into();
    let count = sd.namespaces.len().max(1);
    let mut pods: Vec<HashMap<PodName, Labels>> = vec![HashMap::new(); count];
    let mut listing: Vec<Option<HashMap<PodName, Labels>>> = vec![None; count];
    while let Some((i, event)) = events.next().await {
        let changed = match event {
            Err(error) => {
                tracing::warn!(job = %job.name, %error, "kubernetes_sd: watch failed; retrying with backoff");
                false
            }
            Ok(Event::Init) => {
                listing[i] = Some(HashMap::new());
                false
            }
            Ok(Event::InitApply(pod)) => {
                if let (Some(buffer), Some(labels)) = (&mut listing[i], pod_target_labels(&pod)) {
                    buffer.insert(name_of(&pod), labels);
                }
                false
            }
            Ok(Event::InitDone) => {
                pods[i] = listing[i].take().unwrap_or_default();
                true
            }
            Ok(Event::Apply(pod)) => {
                match pod_target_labels(&pod) {
                    Some(labels) => pods[i].insert(name_of(&pod), labels),
                    None => pods[i].remove(&name_of(&pod)),
                };
                true
            }
            Ok(Event::Delete(pod)) => pods[i].remove(&name_of(&pod)).is_some(),
        };
        if changed {
            let list: Vec<_> = pods
                .iter()
                .flat_map(HashMap::values)
                .filter_map(|labels| build_target(&section, &job, labels.clone(), &metric_rules))
                .collect();
            tracing::debug!(job = %job.name, targets = list.len(), "kubernetes_sd: targets updated");
            targets.set_targets(&job.name, list);
        }
    }
}
