//! Runs a scenario: one proxy per sidecar workload and per waypoint (all sharing one compiled
//! module and one clock; with TCP calls every proxy also runs the NETWORK plugin), every call
//! observed by the proxies on its route (`run_call.rs`), TCP connections and gRPC streams kept
//! open across time, ticks and report posts driven to a sink or to a loopback
//! [`ReportReceiver`].
//!
//! Scheduling and bookkeeping only: what each side observes comes from `route.rs`; with
//! [`Simulation::attach_cluster`] each observation is also recorded into `cluster/`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshtap_report::Report;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::host::{
    Clock, FilterModule, HostError, NodeInfo, PluginSpec, Proxy, ProxyConfig, Traffic,
};

use super::cluster::{Announcement, Cluster};
use super::mesh::ResolvedWorkload;
use super::open_traffic::OpenTraffic;
use super::receiver::ReportReceiver;
use super::scenario::{Protocol, Scenario, ScenarioError};
use super::waypoint::ResolvedWaypoint;

/// The cluster reports go to unless the plugin config names another.
pub const DEFAULT_SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";
const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// Root id and plugin name of the NETWORK plugin the sim adds for TCP calls.
pub const TCP_PLUGIN: &str = "meshtap-tcp";

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Post reports to this sink (`http://host:port`); without it a loopback receiver collects them.
    pub sink_url: Option<String>,
    /// Inline ingest token put into the plugin config (and required by the loopback receiver).
    pub token: Option<String>,
    /// Print every report the loopback receiver decodes as one JSON line on stdout.
    pub print_reports: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("sink URL {0:?} is not http://host:port")]
    SinkUrl(String),
    #[error("starting the loopback report receiver: {0}")]
    Receiver(std::io::Error),
    #[error("plugin_config in the scenario must be a JSON object")]
    PluginConfig,
}

/// Streams and TCP connections each side observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimTotals {
    pub client_streams: u64,
    pub server_streams: u64,
    pub waypoint_streams: u64,
    pub client_connections: u64,
    pub server_connections: u64,
    pub waypoint_connections: u64,
}

/// A scenario being run, step by step.
pub struct Simulation {
    pub(super) scenario: Scenario,
    pub(super) clock: Clock,
    pub(super) workloads: Vec<ResolvedWorkload>,
    pub(super) waypoints: Vec<ResolvedWaypoint>,
    /// By workload name (sidecars) or [`ResolvedWaypoint::proxy_key`].
    pub(super) proxies: BTreeMap<String, Proxy>,
    next_worker: BTreeMap<String, usize>,
    receiver: Option<ReportReceiver>,
    pub(super) rng: StdRng,
    report_interval: Duration,
    pub(super) totals: SimTotals,
    pub(super) open: OpenTraffic,
    /// Calls run so far (numbers the calls' request ids).
    pub(super) calls_run: u64,
    /// The cluster endpoints, once started.
    pub(super) cluster: Option<Cluster>,
}

impl Simulation {
    /// Starts a proxy per sidecar workload and per waypoint, and the loopback receiver if no
    /// sink URL is given.
    pub fn start(
        module: Arc<FilterModule>,
        scenario: Scenario,
        options: &SimOptions,
        clock: Clock,
    ) -> Result<Simulation, SimError> {
        let plugin_config = plugin_config(&scenario, options)?;
        let sink_cluster = plugin_config
            .get("sink_cluster")
            .and_then(|v| v.as_str())
            .unwrap_or(DEFAULT_SINK_CLUSTER)
            .to_string();
        let report_interval = plugin_config
            .get("report_interval")
            .and_then(|v| v.as_str())
            .and_then(parse_duration)
            .unwrap_or(DEFAULT_REPORT_INTERVAL);
        let (receiver, sink_addr) = match &options.sink_url {
            Some(url) => (None, sink_addr(url)?),
            None => {
                let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
                let receiver =
                    ReportReceiver::start(loopback, options.token.clone(), options.print_reports)
                        .map_err(SimError::Receiver)?;
                let addr = receiver.addr();
                (Some(receiver), addr)
            }
        };
        let workloads = ResolvedWorkload::resolve_all(&scenario);
        let waypoints = ResolvedWaypoint::resolve_all(&scenario);
        let base = ProxyConfig {
            plugin_config: serde_json::Value::Object(plugin_config.clone()).to_string(),
            extra_plugins: network_plugin(&scenario, &plugin_config),
            env: scenario
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            clock: clock.clone(),
            clusters: vec![(sink_cluster, sink_addr)],
            ..ProxyConfig::default()
        };
        let proxies = start_proxies(&module, &scenario, &workloads, &waypoints, &base)?;
        Ok(Simulation {
            rng: StdRng::seed_from_u64(scenario.seed),
            scenario,
            clock,
            workloads,
            waypoints,
            proxies,
            next_worker: BTreeMap::new(),
            receiver,
            report_interval,
            totals: SimTotals::default(),
            open: OpenTraffic::default(),
            calls_run: 0,
            cluster: None,
        })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn proxies(&self) -> &BTreeMap<String, Proxy> {
        &self.proxies
    }

    pub fn proxy_mut(&mut self, workload: &str) -> Option<&mut Proxy> {
        self.proxies.get_mut(workload)
    }

    pub fn receiver(&self) -> Option<&ReportReceiver> {
        self.receiver.as_ref()
    }

    pub fn totals(&self) -> SimTotals {
        self.totals
    }

    pub fn report_interval(&self) -> Duration {
        self.report_interval
    }

    /// Reports collected by the loopback receiver (empty when posting to a real sink).
    pub fn reports(&self) -> Vec<Report> {
        self.receiver
            .as_ref()
            .map(ReportReceiver::reports)
            .unwrap_or_default()
    }

    /// Records every call from now on into `cluster` (started with
    /// [`Cluster::for_scenario`] on this scenario and clock), and lets its istiod tick.
    pub fn attach_cluster(&mut self, cluster: Cluster) -> &Announcement {
        self.cluster.insert(cluster).announcement()
    }

    /// Round-robin over the proxy's workers.
    pub(super) fn next_worker_of(&mut self, proxy: &str) -> usize {
        let workers = self.proxies[proxy].workers();
        let slot = self.next_worker.entry(proxy.to_string()).or_default();
        let worker = *slot % workers;
        *slot += 1;
        worker
    }

    /// TCP connections and gRPC streams still open (one per proxy that sees them).
    pub fn open_connections(&self) -> usize {
        self.open.len()
    }

    /// Every call of a count-mode scenario, each call's count split exactly by outcome weight,
    /// in a seeded random order, `spacing` of (manual) time apart.
    pub fn run_counts(&mut self, spacing: Duration) {
        let mut plan = Vec::new();
        for (i, call) in self.scenario.calls.iter().enumerate() {
            let weights: Vec<u64> = call.outcomes.iter().map(|o| u64::from(o.weight)).collect();
            for (outcome, n) in split_by_weight(call.count.unwrap_or(0), &weights)
                .into_iter()
                .enumerate()
            {
                plan.extend(std::iter::repeat_n((i, outcome), n as usize));
            }
        }
        plan.shuffle(&mut self.rng);
        for (call, outcome) in plan {
            self.run_call(call, outcome);
            if !spacing.is_zero() {
                self.advance(spacing);
            }
        }
        while let Some(due) = self.open.next_due() {
            let now = self.clock.now_nanos();
            self.advance(Duration::from_nanos(due.saturating_sub(now)));
        }
    }

    /// Moves the manual clock, delivering open traffic's steps and firing ticks of every proxy in time
    /// order, and letting report posts complete before time moves on.
    pub fn advance(&mut self, by: Duration) {
        let target = self.clock.now_nanos() + by.as_nanos() as u64;
        loop {
            let tick = self.proxies.values().filter_map(Proxy::next_tick).min();
            let due = tick.into_iter().chain(self.open.next_due()).min();
            let Some(due) = due.filter(|d| *d <= target) else {
                break;
            };
            let now = self.clock.now_nanos();
            if due > now {
                self.clock.advance(Duration::from_nanos(due - now));
            }
            self.fire_and_settle();
        }
        let now = self.clock.now_nanos();
        if target > now {
            self.clock.advance(Duration::from_nanos(target - now));
        }
        self.fire_and_settle();
    }

    fn fire_and_settle(&mut self) {
        self.tick_cluster();
        self.open.run_due(&mut self.proxies, self.clock.now_nanos());
        for proxy in self.proxies.values_mut() {
            proxy.fire_due_ticks();
        }
        for proxy in self.proxies.values_mut() {
            proxy.settle(Duration::from_secs(15));
        }
    }

    /// Lets every proxy report its final totals: two report intervals of manual time.
    pub fn flush(&mut self) {
        self.advance(self.report_interval * 2 + Duration::from_secs(1));
    }

    /// Rate mode on a real clock: calls at their rates for `duration`, ticks as they fall due.
    pub fn run_rates(&mut self, duration: Duration) {
        self.drive_real_time(duration, true);
    }

    /// Real-clock time without traffic (ticks and report posts only), e.g. to let a rate-mode
    /// run report its final totals.
    pub fn idle(&mut self, duration: Duration) {
        self.drive_real_time(duration, false);
    }

    fn drive_real_time(&mut self, duration: Duration, traffic: bool) {
        let start = Instant::now();
        let mut next_due: Vec<Instant> = vec![start; self.scenario.calls.len()];
        let poll = Duration::from_millis(20);
        while start.elapsed() < duration {
            let now = Instant::now();
            for (call, due) in next_due.iter_mut().enumerate().filter(|_| traffic) {
                let rate = self.scenario.calls[call].rate.unwrap_or(0.0);
                while *due <= now && rate > 0.0 {
                    let outcome = self.pick_outcome(call);
                    self.run_call(call, outcome);
                    *due += Duration::from_secs_f64(1.0 / rate);
                }
            }
            self.tick_cluster();
            self.open.run_due(&mut self.proxies, self.clock.now_nanos());
            for proxy in self.proxies.values_mut() {
                proxy.fire_due_ticks();
                proxy.pump();
            }
            let next_call = next_due.iter().min().copied().filter(|_| traffic);
            let wake = next_call.unwrap_or(now + poll).min(Instant::now() + poll);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }

    fn tick_cluster(&mut self) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.tick();
        }
    }

    fn pick_outcome(&mut self, call: usize) -> usize {
        let outcomes = &self.scenario.calls[call].outcomes;
        let total: u64 = outcomes.iter().map(|o| u64::from(o.weight)).sum();
        let mut pick = self.rng.random_range(0..total);
        for (i, outcome) in outcomes.iter().enumerate() {
            if pick < u64::from(outcome.weight) {
                return i;
            }
            pick -= u64::from(outcome.weight);
        }
        unreachable!("pick is below the total weight")
    }
}

/// A proxy per sidecar workload (keyed by name) and per waypoint (by its proxy key), each
/// `base` with its node, workers and VM seed.
fn start_proxies(
    module: &Arc<FilterModule>,
    scenario: &Scenario,
    workloads: &[ResolvedWorkload],
    waypoints: &[ResolvedWaypoint],
    base: &ProxyConfig,
) -> Result<BTreeMap<String, Proxy>, SimError> {
    let mesh = &scenario.mesh;
    let sidecars = workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.sidecar)
        .map(|(i, w)| (i, w.name.clone(), w.node(mesh), w.workers));
    let waypoint_proxies = waypoints.iter().enumerate().map(|(i, wp)| {
        let seed_index = workloads.len() + i;
        (seed_index, wp.proxy_key(), wp.node(mesh), wp.workers)
    });
    let mut proxies = BTreeMap::new();
    for (i, key, node, workers) in sidecars.chain(waypoint_proxies) {
        let config = proxy_config(base, node, workers, scenario.seed, i);
        proxies.insert(key, Proxy::start(module.clone(), config)?);
    }
    Ok(proxies)
}

/// One proxy's config: `base` with its node, workers and VM seed.
fn proxy_config(
    base: &ProxyConfig,
    node: NodeInfo,
    workers: usize,
    seed: u64,
    index: usize,
) -> ProxyConfig {
    ProxyConfig {
        node,
        workers,
        seed: seed.wrapping_mul(1000).wrapping_add(index as u64),
        ..base.clone()
    }
}

/// Splits `count` by `weights` exactly (largest remainder; ties to the earlier entry).
pub fn split_by_weight(count: u64, weights: &[u64]) -> Vec<u64> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<u64> = weights.iter().map(|w| count * w / total).collect();
    let mut remainders: Vec<(u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| ((count * w) % total, i))
        .collect();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = count - shares.iter().sum::<u64>();
    for (_, i) in remainders.into_iter().take(missing as usize) {
        shares[i] += 1;
    }
    shares
}

/// Parses Istio-style durations: `500ms`, `10s`, `1m`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

fn plugin_config(
    scenario: &Scenario,
    options: &SimOptions,
) -> Result<serde_json::Map<String, serde_json::Value>, SimError> {
    let mut config = match &scenario.plugin_config {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map.clone(),
        Some(_) => return Err(SimError::PluginConfig),
    };
    if let Some(token) = &options.token {
        config.insert(
            "ingest_token".into(),
            serde_json::Value::String(token.clone()),
        );
    }
    Ok(config)
}

/// With TCP calls, the NETWORK plugin every proxy runs next to the HTTP one: the same
/// configuration plus `"type": "NETWORK"`, without `access_log`.
fn network_plugin(
    scenario: &Scenario,
    http_config: &serde_json::Map<String, serde_json::Value>,
) -> Vec<PluginSpec> {
    if !scenario.calls.iter().any(|c| c.protocol == Protocol::Tcp) {
        return Vec::new();
    }
    let mut config = http_config.clone();
    config.insert("type".into(), serde_json::Value::String("NETWORK".into()));
    // Access logs come from the HTTP plugin only (the filter refuses them with NETWORK).
    config.remove("access_log");
    vec![PluginSpec {
        root_id: TCP_PLUGIN.into(),
        plugin_name: TCP_PLUGIN.into(),
        plugin_config: serde_json::Value::Object(config).to_string(),
        traffic: Traffic::Network,
    }]
}

fn sink_addr(url: &str) -> Result<SocketAddr, SimError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| SimError::SinkUrl(url.to_string()))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| SimError::SinkUrl(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_split_exactly() {
        assert_eq!(split_by_weight(10, &[9, 1]), vec![9, 1]);
        assert_eq!(split_by_weight(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split_by_weight(7, &[0, 5]), vec![0, 7]);
        assert_eq!(split_by_weight(3, &[2, 1]).iter().sum::<u64>(), 3);
    }

    #[test]
    fn durations_parse_like_istio() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn sink_urls_resolve() {
        assert_eq!(
            sink_addr("http://127.0.0.1:9091").unwrap(),
            "127.0.0.1:9091".parse::<SocketAddr>().unwrap()
        );
        assert!(sink_addr("https://x:1").is_err());
    }
}
