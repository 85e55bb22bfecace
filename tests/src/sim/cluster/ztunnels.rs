//! The simulated cluster's ztunnels: one per node where the scenario runs pods, once any
//! workload is ambient (the DaemonSet `ztunnel` in `istio-system`, pods `ztunnel-<5 chars>`).
//! Each keeps the totals of the connection legs it counted, for its `:15020/metrics` body
//! (`ambient::ztunnel_stats`), and names the file its connection records go to.
//!
//! Bookkeeping only; legs come from `ambient::legs`, serving from `serve.rs`.

use crate::sim::ambient::ztunnel_stats::ztunnel_metrics_body;
use crate::sim::ambient::L4Leg;
use crate::sim::waypoint::ResolvedWaypoint;
use crate::sim::workload::ResolvedWorkload;

/// Where ztunnel runs.
pub const ZTUNNEL_NAMESPACE: &str = "istio-system";
/// The path of ztunnel's metrics (port 15020).
pub const ZTUNNEL_METRICS_PATH: &str = "/metrics";

/// One node's ztunnel.
#[derive(Clone, Debug)]
pub struct Ztunnel {
    pub node: String,
    pub pod: String,
    /// Ambient pods on the node (`workload_manager_active_proxy_count`).
    active_proxies: usize,
    /// Totals per distinct label set, in first-seen order.
    legs: Vec<L4Leg>,
}

impl Ztunnel {
    /// The ztunnels of a scenario's pods: none without ambient workloads, else one per node
    /// (in first-seen order of workloads, then waypoints).
    pub fn for_nodes(
        workloads: &[ResolvedWorkload],
        waypoints: &[ResolvedWaypoint],
    ) -> Vec<Ztunnel> {
        if !workloads.iter().any(ResolvedWorkload::ambient) {
            return Vec::new();
        }
        let nodes = workloads
            .iter()
            .map(|w| &w.node)
            .chain(waypoints.iter().map(|wp| &wp.node));
        let mut ztunnels: Vec<Ztunnel> = Vec::new();
        for node in nodes {
            if ztunnels.iter().all(|z| &z.node != node) {
                ztunnels.push(Ztunnel {
                    node: node.clone(),
                    pod: format!("ztunnel-{}", pod_suffix(node)),
                    active_proxies: workloads
                        .iter()
                        .filter(|w| w.ambient() && &w.node == node)
                        .count(),
                    legs: Vec::new(),
                });
            }
        }
        ztunnels
    }

    /// Adds a leg's connections and bytes to the totals of its label set.
    pub fn record(&mut self, leg: &L4Leg) {
        let same = |l: &&mut L4Leg| {
            l.direction == leg.direction
                && l.source == leg.source
                && l.destination == leg.destination
                && l.service == leg.service
                && l.response_flags == leg.response_flags
                && l.mtls == leg.mtls
        };
        match self.legs.iter_mut().find(same) {
            Some(total) => {
                total.connections += leg.connections;
                total.received_bytes += leg.received_bytes;
                total.sent_bytes += leg.sent_bytes;
            }
            None => self.legs.push(leg.clone()),
        }
    }

    /// The `:15020/metrics` body now.
    pub fn render(&self) -> String {
        ztunnel_metrics_body(&self.legs, self.active_proxies)
    }
}

/// A DaemonSet pod's 5-character suffix, stable per node.
fn pod_suffix(node: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut hash = node.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (0..5)
        .map(|_| {
            let c = ALPHABET[(hash % ALPHABET.len() as u32) as usize];
            hash /= ALPHABET.len() as u32;
            c as char
        })
        .collect()
}
