//! What a Kubernetes cluster serves besides the sidecars' and waypoints' reports, for the
//! simulated mesh: each sidecar's merged `:15020/stats/prometheus`, istiod's `:15014/metrics`,
//! each node's ztunnel `:15020/metrics` (ambient scenarios), and the sidecars' and ztunnels' CRI
//! log files under a kubelet-style pod-log directory. Every endpoint listens on
//! its own loopback port (bound to port 0); [`Announcement`] says where, and `sink_config.rs`
//! turns it into the sink's `scrape:` and `log_files:` sections.
//!
//! The simulation records into it (`record_http`, `record_tcp`, `record_l4`, `tick`); the bodies are
//! rendered when scraped. It drives no traffic itself.

mod access_line;
mod histogram;
mod istiod;
pub mod pod_logs;
mod serve;
mod sidecar_stats;
pub mod sink_config;
mod standard_labels;
mod standard_stats;
pub mod ztunnels;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::host::properties::path_key;
use crate::host::{Clock, HttpExchange, Phase, Properties};

use super::ambient::ztunnel_logs::ztunnel_access_lines;
use super::ambient::L4Leg;
use super::mesh::ResolvedWorkload;
use super::mesh_tcp::TcpData;
use super::scenario::{MeshSettings, Scenario};
use super::waypoint::ResolvedWaypoint;
use istiod::ControlPlane;
use pod_logs::PodLogs;
use sidecar_stats::{Listener, SidecarStats};
use standard_stats::{HttpObservation, TcpObservation};
use ztunnels::{Ztunnel, ZTUNNEL_METRICS_PATH, ZTUNNEL_NAMESPACE};

pub use access_line::rfc3339;
pub use serve::{Endpoint, StatsServer, TEXT_CONTENT_TYPE, ZTUNNEL_CONTENT_TYPE};
pub use standard_labels::{Reporter, SideOfCall};

/// The path of a sidecar's merged metrics (istio-agent, port 15020).
pub const SIDECAR_STATS_PATH: &str = "/stats/prometheus";
/// The path of istiod's metrics (port 15014).
pub const ISTIOD_METRICS_PATH: &str = "/metrics";
/// The simulated istiod pod.
pub const ISTIOD_NAMESPACE: &str = "istio-system";
pub const ISTIOD_POD: &str = "istiod-7d4f9c8b6d-x9k2p";

/// Where the simulated cluster's endpoints are.
#[derive(Clone, Debug)]
pub struct Announcement {
    /// istiod's `:15014` stand-in.
    pub istiod: SocketAddr,
    pub sidecars: Vec<SidecarTarget>,
    /// Every node's ztunnel (none without ambient workloads).
    pub ztunnels: Vec<ZtunnelTarget>,
    /// The kubelet's pod-log directory (`/var/log/pods` on a node).
    pub pod_log_root: PathBuf,
}

/// One sidecar's `:15020` stand-in and the pod it belongs to.
#[derive(Clone, Debug)]
pub struct SidecarTarget {
    pub workload: String,
    pub namespace: String,
    pub pod: String,
    /// The pod IP (the `instance` label is `<ip>:15020`, as on its reported series).
    pub ip: String,
    pub stats: SocketAddr,
}

/// One node's ztunnel `:15020` stand-in (pod `ztunnel-<5 chars>` in `istio-system`).
#[derive(Clone, Debug)]
pub struct ZtunnelTarget {
    pub node: String,
    pub pod: String,
    pub stats: SocketAddr,
}

struct ClusterState {
    /// In the order of [`Announcement::sidecars`] (listener `i` serves sidecar `i`).
    sidecars: Vec<SidecarStats>,
    istiod: ControlPlane,
    /// In the order of [`Announcement::ztunnels`] (after the sidecars' and istiod's listeners).
    ztunnels: Vec<Ztunnel>,
}

/// The running endpoints and log files.
pub struct Cluster {
    state: Arc<Mutex<ClusterState>>,
    clock: Clock,
    logs: PodLogs,
    announcement: Announcement,
    _server: StatsServer,
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

impl Cluster {
    /// The cluster of `scenario`'s workloads (before the [`crate::sim::Simulation`] that
    /// records into it, so a sink can be configured with its addresses first).
    pub fn for_scenario(
        scenario: &Scenario,
        clock: Clock,
        pod_log_root: &Path,
    ) -> std::io::Result<Cluster> {
        let workloads = ResolvedWorkload::resolve_all(scenario);
        let waypoints = ResolvedWaypoint::resolve_all(scenario);
        Cluster::start(
            &workloads,
            &waypoints,
            &scenario.mesh,
            scenario.seed,
            clock,
            pod_log_root,
        )
    }

    /// Binds one loopback listener per sidecar, one for istiod and one per ztunnel, and
    /// creates the log files under `pod_log_root`.
    pub fn start(
        workloads: &[ResolvedWorkload],
        waypoints: &[ResolvedWaypoint],
        mesh: &MeshSettings,
        seed: u64,
        clock: Clock,
        pod_log_root: &Path,
    ) -> std::io::Result<Cluster> {
        let sidecars: Vec<&ResolvedWorkload> = workloads.iter().filter(|w| w.sidecar).collect();
        let now_s = seconds(clock.now_nanos());
        let state = Arc::new(Mutex::new(ClusterState {
            sidecars: sidecars
                .iter()
                .map(|w| SidecarStats::new(w.workers, now_s - 120.0))
                .collect(),
            istiod: ControlPlane::new(seed, &mesh.istio_version, sidecars.len() as u64, now_s),
            ztunnels: Ztunnel::for_nodes(workloads, waypoints),
        }));
        let ztunnels = state.lock().expect("cluster state lock").ztunnels.clone();
        let server = serve(&state, &clock)?;
        let addrs = server.addrs();
        let announcement = Announcement {
            istiod: addrs[sidecars.len()],
            ztunnels: ztunnels
                .iter()
                .zip(&addrs[sidecars.len() + 1..])
                .map(|(z, addr)| ZtunnelTarget {
                    node: z.node.clone(),
                    pod: z.pod.clone(),
                    stats: *addr,
                })
                .collect(),
            sidecars: sidecars
                .iter()
                .zip(addrs)
                .map(|(w, addr)| SidecarTarget {
                    workload: w.name.clone(),
                    namespace: w.namespace.clone(),
                    pod: w.pod.clone(),
                    ip: w.ip.clone(),
                    stats: *addr,
                })
                .collect(),
            pod_log_root: pod_log_root.to_path_buf(),
        };
        let mut logs = PodLogs::create(pod_log_root, sidecars.into_iter(), clock.now_nanos())?;
        for ztunnel in &ztunnels {
            logs.add_pod(
                &ztunnel_log_key(&ztunnel.node),
                ZTUNNEL_NAMESPACE,
                &ztunnel.pod,
            )?;
        }
        Ok(Cluster {
            state,
            clock,
            logs,
            announcement,
            _server: server,
        })
    }

    pub fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    fn sidecar_index(&self, workload: &str) -> Option<usize> {
        self.announcement
            .sidecars
            .iter()
            .position(|s| s.workload == workload)
    }

    /// The workload whose sidecar reports `side`.
    fn reporting_workload<'a>(side: &'a SideOfCall<'_>) -> Option<&'a str> {
        match (side.reporter, side.target) {
            (Reporter::Source, _) => Some(&side.from.name),
            (Reporter::Destination, super::mesh::Target::Workload(to)) => Some(&to.name),
            (Reporter::Destination, super::mesh::Target::External(_)) => None,
        }
    }

    /// One HTTP or gRPC stream `side` observed: standard and Envoy counters, and the
    /// access-log line in the sidecar's log file.
    pub fn record_http(&mut self, side: &SideOfCall<'_>, exchange: &HttpExchange) {
        let Some(workload) = Self::reporting_workload(side) else {
            return;
        };
        let Some(index) = self.sidecar_index(workload) else {
            return;
        };
        let instance = side.instance;
        let now = self.clock.now_nanos();
        {
            let mut state = self.state.lock().expect("cluster state lock");
            let sidecar = &mut state.sidecars[index];
            sidecar.standard.record_http(
                &side.http_labels(),
                // Istio's native filter meters the wire (`BytesMeter`), not the total sizes.
                &HttpObservation {
                    duration_ms: instance.latency_ms,
                    request_bytes: instance.request_wire_bytes,
                    response_bytes: instance.response_wire_bytes,
                },
            );
            sidecar.record_upstream(listener(side), &cluster_name(&exchange.properties), false);
        }
        let line = access_line::text_line(exchange, now, instance.flags_text());
        let written = now + instance.latency_ms * 1_000_000;
        if let Err(error) = self.logs.append(workload, written, &line) {
            tracing::warn!(%error, workload, "writing the simulated pod log");
        }
    }

    /// One TCP connection `side` observed (counted whole when it opens).
    pub fn record_tcp(&mut self, side: &SideOfCall<'_>, properties: &Properties, data: &TcpData) {
        let Some(index) = Self::reporting_workload(side).and_then(|w| self.sidecar_index(w)) else {
            return;
        };
        let bytes = |chunks: &[Vec<u8>]| chunks.iter().map(|c| c.len() as u64).sum();
        let mut state = self.state.lock().expect("cluster state lock");
        let sidecar = &mut state.sidecars[index];
        sidecar.standard.record_tcp(
            &side.tcp_labels(),
            &TcpObservation {
                received_bytes: bytes(&data.sent),
                sent_bytes: bytes(&data.received),
            },
        );
        sidecar.record_upstream(listener(side), &cluster_name(properties), true);
    }

    /// Connection legs ztunnels counted (`(node, leg)`, as `ambient::legs` gives them): their
    /// totals, and one connection record per leg in the node's ztunnel log, written when the
    /// connection ends (`duration_ms` from now).
    pub fn record_l4(&mut self, legs: &[(String, L4Leg)], duration_ms: u64) {
        let ended = self.clock.now_nanos() + duration_ms * 1_000_000;
        let mut state = self.state.lock().expect("cluster state lock");
        for (node, leg) in legs {
            let Some(ztunnel) = state.ztunnels.iter_mut().find(|z| &z.node == node) else {
                continue;
            };
            ztunnel.record(leg);
            for line in ztunnel_access_lines(leg, &rfc3339(ended, 6)) {
                if let Err(error) = self.logs.append(&ztunnel_log_key(node), ended, &line) {
                    tracing::warn!(%error, node, "writing the simulated ztunnel log");
                }
            }
        }
    }

    /// Lets istiod apply the config changes due by now, pushing to every sidecar.
    pub fn tick(&mut self) {
        let now_s = seconds(self.clock.now_nanos());
        let mut state = self.state.lock().expect("cluster state lock");
        let pushed = state.istiod.advance(now_s);
        if pushed > 0 {
            for sidecar in &mut state.sidecars {
                sidecar.record_xds_pushes(pushed);
            }
        }
    }
}

/// Serves `state` on loopback ports: the sidecars' stats, then istiod's metrics, then the
/// ztunnels' metrics, each rendered when scraped.
fn serve(state: &Arc<Mutex<ClusterState>>, clock: &Clock) -> std::io::Result<StatsServer> {
    let (sidecars, ztunnels) = {
        let state = state.lock().expect("cluster state lock");
        (state.sidecars.len(), state.ztunnels.len())
    };
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let bound = (0..sidecars + 1 + ztunnels)
        .map(|_| TcpListener::bind(loopback))
        .collect::<std::io::Result<Vec<_>>>()?;
    let text = |path| Endpoint {
        path,
        content_type: TEXT_CONTENT_TYPE,
    };
    let mut endpoints = vec![text(SIDECAR_STATS_PATH); sidecars];
    endpoints.push(text(ISTIOD_METRICS_PATH));
    let ztunnel = Endpoint {
        path: ZTUNNEL_METRICS_PATH,
        content_type: ZTUNNEL_CONTENT_TYPE,
    };
    endpoints.extend(std::iter::repeat_n(ztunnel, ztunnels));
    let (state, clock) = (state.clone(), clock.clone());
    StatsServer::start(bound, endpoints, move |i| {
        let state = state.lock().expect("cluster state lock");
        let now_s = seconds(clock.now_nanos());
        match i.checked_sub(state.sidecars.len()) {
            None => state.sidecars[i].render(now_s),
            Some(0) => state.istiod.render(now_s),
            Some(z) => state.ztunnels[z - 1].render(),
        }
    })
}

/// The key of a node's ztunnel log among the pod logs (no workload name has a `/`).
fn ztunnel_log_key(node: &str) -> String {
    format!("{ZTUNNEL_NAMESPACE}/{node}")
}

fn listener(side: &SideOfCall<'_>) -> Listener {
    match side.reporter {
        Reporter::Source => Listener::Outbound,
        Reporter::Destination => Listener::Inbound,
    }
}

fn cluster_name(properties: &Properties) -> String {
    properties
        .lookup(&path_key(&["xds", "cluster_name"]), Phase::Log)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| "BlackHoleCluster".into())
}
