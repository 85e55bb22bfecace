//! The replicas sharing the scrape targets: a kube-rs watcher (list, then watch, re-listing
//! with backoff after errors) over the EndpointSlices of the sink's headless Service
//! (`kubernetes.io/service-name=<service>` in its namespace), turned into a [`Membership`]
//! that the target set applies on every change.
//!
//! Before the first list the replica is `starting` (scrapes nothing) for at most `wait`, then
//! `unknown` (scrapes everything) until a list arrives. A failed watch keeps the last known
//! membership: the EndpointSlices cannot change while the API server is unreachable, and the
//! watcher re-lists as soon as it answers again.
//!
//! Owns the API-server conversation about members; the ownership rule is in
//! [`super::sharding`]. It must not scrape or decide ownership itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;

use super::config::ShardingConfig;
use super::kubernetes::kube_client;
use super::metrics::MembershipMetrics;
use super::sharding::Membership;
use super::TargetSet;

/// EndpointSlices by name.
type Slices = BTreeMap<String, EndpointSlice>;

fn slice_name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

/// Applies `membership` to `targets`, logging and counting the change.
fn publish(
    targets: &TargetSet,
    metrics: &MembershipMetrics,
    config: &ShardingConfig,
    membership: Membership,
) {
    if targets.membership() == membership {
        return;
    }
    match membership {
        Membership::Known { this: None, .. } => tracing::warn!(
            member = %config.member, members = membership.size(),
            "scrape sharding: this replica is not a ready endpoint of the Service; it scrapes nothing"
        ),
        Membership::Unknown => tracing::warn!(
            service = %config.service,
            "scrape sharding: membership unknown; this replica scrapes every target"
        ),
        _ => tracing::info!(
            state = membership.state(),
            members = membership.size(),
            "scrape sharding: membership changed; targets rebalanced"
        ),
    }
    metrics.observe(&membership);
    targets.set_membership(membership);
}

/// Watches the Service's EndpointSlices until the task is aborted, keeping `targets`'
/// membership current; `wait` is how long the first list may take.
pub async fn run_membership(
    config: ShardingConfig,
    wait: Duration,
    targets: Arc<TargetSet>,
    metrics: Arc<MembershipMetrics>,
) {
    let client = match kube_client(config.api_server.as_ref()).await {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "scrape sharding: no API client");
            metrics.count_error();
            publish(&targets, &metrics, &config, Membership::Unknown);
            return;
        }
    };
    let api: Api<EndpointSlice> = Api::namespaced(client, &config.namespace);
    let selector = format!("kubernetes.io/service-name={}", config.service);
    let mut events = watcher::watcher(api, watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut watched = WatchedSlices::default();
    let mut waiting_for_list = true;
    let first_list_deadline = tokio::time::sleep(wait);
    tokio::pin!(first_list_deadline);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut first_list_deadline, if waiting_for_list => {
                waiting_for_list = false;
                tracing::warn!(?wait, "scrape sharding: no EndpointSlice list yet");
                publish(&targets, &metrics, &config, Membership::Unknown);
                continue;
            }
        };
        let Some(event) = event else { return };
        let changed = match event {
            Err(error) => {
                tracing::warn!(%error, "scrape sharding: EndpointSlice watch failed; keeping the last membership, retrying with backoff");
                metrics.count_error();
                false
            }
            Ok(event) => {
                waiting_for_list &= !matches!(event, Event::InitDone);
                watched.apply(event)
            }
        };
        if changed {
            metrics.count_update();
            let membership = Membership::from_slices(watched.slices.values(), &config.member);
            publish(&targets, &metrics, &config, membership);
        }
    }
}

/// The EndpointSlices the watch has delivered: the current set, and the one a relist is
/// building (swapped in whole at `InitDone`, so a relist never shows a partial membership).
#[derive(Default)]
struct WatchedSlices {
    slices: Slices,
    listing: Option<Slices>,
}

impl WatchedSlices {
    /// Applies one watch event; true when the current set changed.
    fn apply(&mut self, event: Event<EndpointSlice>) -> bool {
        match event {
            Event::Init => {
                self.listing = Some(Slices::new());
                false
            }
            Event::InitApply(slice) => {
                if let Some(buffer) = &mut self.listing {
                    buffer.insert(slice_name(&slice), slice);
                }
                false
            }
            Event::InitDone => {
                self.slices = self.listing.take().unwrap_or_default();
                true
            }
            Event::Apply(slice) => {
                self.slices.insert(slice_name(&slice), slice);
                true
            }
            Event::Delete(slice) => self.slices.remove(&slice_name(&slice)).is_some(),
        }
    }
}
