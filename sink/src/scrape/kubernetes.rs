//! Kubernetes pod discovery (`kubernetes_sd`): a kube-rs watcher (list, then watch, re-listing
//! with backoff after errors) per configured namespace, or one over all namespaces; every
//! change hands the discovered label sets of all pods to a callback: a scrape job turns them
//! into targets, the log tailer into files to tail.
//!
//! Owns the API-server conversation and the pod set; the pod → labels rules are in
//! [`super::pods`], target building in [`super::target`]. It must not scrape.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use super::config::{KubernetesSd, PodRole, ScrapeConfig, ScrapeJob};
use super::pods::{annotated_pod_target, pod_targets};
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

/// The discovered label sets of one pod under `role`.
fn discovered(role: PodRole, pod: &Pod) -> Vec<Labels> {
    match role {
        PodRole::Annotated => annotated_pod_target(pod).into_iter().collect(),
        PodRole::Pod => pod_targets(pod),
    }
}

/// Watches the pods `sd` selects until the task is aborted, calling `on_change` with the
/// discovered label sets of every pod after each change (`what` names the watch in logs).
pub async fn watch_pods(sd: KubernetesSd, what: String, mut on_change: impl FnMut(Vec<Labels>)) {
    let client = match kube_client(sd.api_server.as_ref()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%what, %error, "kubernetes_sd: no API client; nothing is discovered");
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
    let mut watched = vec![WatchedPods::default(); sd.namespaces.len().max(1)];
    while let Some((i, event)) = events.next().await {
        let changed = match event {
            Err(error) => {
                tracing::warn!(%what, %error, "kubernetes_sd: watch failed; retrying with backoff");
                false
            }
            Ok(event) => watched[i].apply(sd.role, event),
        };
        if changed {
            let all = watched
                .iter()
                .flat_map(|w| w.pods.values())
                .flatten()
                .cloned();
            on_change(all.collect());
        }
    }
}

/// One watch's discovered label sets per pod, and the set a relist is building (swapped in
/// whole at `InitDone`, so a relist never shows a partial set).
#[derive(Clone, Default)]
struct WatchedPods {
    pods: HashMap<PodName, Vec<Labels>>,
    listing: Option<HashMap<PodName, Vec<Labels>>>,
}

impl WatchedPods {
    /// Applies one watch event; true when the current set changed.
    fn apply(&mut self, role: PodRole, event: Event<Pod>) -> bool {
        match event {
            Event::Init => {
                self.listing = Some(HashMap::new());
                false
            }
            Event::InitApply(pod) => {
                let found = discovered(role, &pod);
                if let (Some(buffer), false) = (&mut self.listing, found.is_empty()) {
                    buffer.insert(name_of(&pod), found);
                }
                false
            }
            Event::InitDone => {
                self.pods = self.listing.take().unwrap_or_default();
                true
            }
            Event::Apply(pod) => {
                let found = discovered(role, &pod);
                match found.is_empty() {
                    false => self.pods.insert(name_of(&pod), found),
                    true => self.pods.remove(&name_of(&pod)),
                };
                true
            }
            Event::Delete(pod) => self.pods.remove(&name_of(&pod)).is_some(),
        }
    }
}

/// Keeps the targets of `job` equal to what its pod discovery finds, until aborted.
pub async fn run_pod_discovery(
    section: Arc<ScrapeConfig>,
    job: ScrapeJob,
    sd: KubernetesSd,
    targets: Arc<TargetSet>,
) {
    let metric_rules: Arc<[RelabelConfig]> = job.metric_relabel_configs.clone().into();
    let what = format!("scrape job {}", job.name);
    watch_pods(sd, what, |discovered| {
        let list: Vec<_> = discovered
            .into_iter()
            .filter_map(|labels| build_target(&section, &job, labels, &metric_rules))
            .collect();
        tracing::debug!(job = %job.name, targets = list.len(), "kubernetes_sd: targets updated");
        targets.set_targets(&job.name, list);
    })
    .await;
}
