//! What a Kubernetes cluster serves besides the sidecars' reports, for the simulated mesh:
//! each sidecar's merged `:15020/stats/prometheus`, istiod's `:15014/metrics`, and the
//! sidecars' CRI log files under a kubelet-style pod-log directory. Every endpoint listens on
//! its own loopback port (bound to port 0); [`Announcement`] says where, and `sink_config.rs`
//! turns it into the sink's `scrape:` and `log_files:` sections.
//!
//! The simulation records into it (`record_http`, `record_tcp`, `tick`); the bodies are
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

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::host::properties::path_key;
use crate::host::{Clock, HttpExchange, Phase, Properties};

use super::mesh::ResolvedWorkload;
use super::mesh_tcp::TcpData;
use super::scenario::{MeshSettings, Scenario};
use istiod::ControlPlane;
use pod_logs::PodLogs;
use sidecar_stats::{Listener, SidecarStats};
use standard_stats::{HttpObservation, TcpObservation};

pub use access_line::rfc3339;
pub use serve::StatsServer;
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

struct ClusterState {
    /// In the order of [`Announcement::sidecars`] (listener `i` serves sidecar `i`).
    sidecars: Vec<SidecarStats>,
    istiod: ControlPlane,
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
        Cluster::start(
            &workloads,
            &scenario.mesh,
            scenario.seed,
            clock,
            pod_log_root,
        )
    }

    /// Binds one loopback listener per sidecar and one for istiod, and creates the log files
    /// under `pod_log_root`.
    pub fn start(
        workloads: &[ResolvedWorkload],
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
        }));
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let listeners = (0..=sidecars.len())
            .map(|_| TcpListener::bind(loopback))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut paths = vec![SIDECAR_STATS_PATH; sidecars.len()];
        paths.push(ISTIOD_METRICS_PATH);
        let server = {
            let (state, clock) = (state.clone(), clock.clone());
            StatsServer::start(listeners, paths, move |i| {
                let state = state.lock().expect("cluster state lock");
                let now_s = seconds(clock.now_nanos());
                match state.sidecars.get(i) {
                    Some(sidecar) => sidecar.render(now_s),
                    None => state.istiod.render(now_s),
                }
            })?
        };
        let addrs = server.addrs();
        let announcement = Announcement {
            istiod: addrs[sidecars.len()],
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
        let logs = PodLogs::create(pod_log_root, sidecars.into_iter(), clock.now_nanos())?;
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
                &HttpObservation {
                    duration_ms: instance.latency_ms,
                    request_bytes: instance.request_bytes,
                    response_bytes: instance.response_bytes,
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
