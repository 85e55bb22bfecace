//! One simulated sidecar's merged `:15020/stats/prometheus` body, shaped like the reference
//! Istio 1.14 capture: istio-agent's series (`istio_agent_*`, Go-process style) first, then
//! Envoy's (`envoy_cluster_*`, `envoy_listener_*`, `envoy_server_*`, and Istio's standard
//! families from the native stats filter), each family under its `# TYPE` line, label-less
//! Envoy series written `name{} value` as Envoy does.
//!
//! Values move with the traffic the simulator records and with time; it serves nothing itself.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::standard_stats::StandardStats;

/// Envoy's cluster to istiod, always connected in a healthy sidecar.
pub const XDS_CLUSTER: &str = "xds-grpc";

/// What a sidecar's agent and Envoy count, besides the standard families.
#[derive(Clone, Debug)]
pub struct SidecarStats {
    pub standard: StandardStats,
    workers: usize,
    /// Unix seconds the simulated pod started.
    started_s: f64,
    /// Requests (HTTP) or connections (TCP) per upstream cluster.
    upstream_rq: BTreeMap<String, u64>,
    upstream_cx: BTreeMap<String, u64>,
    /// Downstream connections per listener address (`0.0.0.0_15006`, `0.0.0.0_15001`).
    downstream_cx: BTreeMap<&'static str, u64>,
    /// xDS responses the agent proxied (moves with istiod's pushes).
    xds_responses: u64,
}

/// Which listener saw a stream or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Inbound,
    Outbound,
}

impl SidecarStats {
    pub fn new(workers: usize, started_s: f64) -> SidecarStats {
        SidecarStats {
            standard: StandardStats::default(),
            workers,
            started_s,
            upstream_rq: BTreeMap::from([(XDS_CLUSTER.to_string(), 1)]),
            upstream_cx: BTreeMap::from([(XDS_CLUSTER.to_string(), 1)]),
            downstream_cx: BTreeMap::new(),
            xds_responses: 0,
        }
    }

    /// A stream (`tcp == false`) or connection through `listener` to `cluster`.
    pub fn record_upstream(&mut self, listener: Listener, cluster: &str, tcp: bool) {
        let address = match listener {
            Listener::Inbound => "0.0.0.0_15006",
            Listener::Outbound => "0.0.0.0_15001",
        };
        *self.downstream_cx.entry(address).or_default() += 1;
        *self.upstream_rq.entry(cluster.to_string()).or_default() += u64::from(!tcp);
        *self.upstream_cx.entry(cluster.to_string()).or_default() += 1;
    }

    /// istiod pushed `n` xDS responses to this sidecar.
    pub fn record_xds_pushes(&mut self, n: u64) {
        self.xds_responses += n;
    }

    /// The whole merged body at `now_s` (Unix seconds).
    pub fn render(&self, now_s: f64) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_agent(&mut out, now_s);
        self.render_envoy(&mut out, now_s);
        out
    }

    fn render_agent(&self, out: &mut String, now_s: f64) {
        let up = (now_s - self.started_s).max(0.0);
        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP istio_agent_cert_expiry_seconds The time remaining, in seconds, before the certificate chain will expire. A negative value indicates the cert is expired.\n\
             # TYPE istio_agent_cert_expiry_seconds gauge\n\
             istio_agent_cert_expiry_seconds{{resource_name=\"default\"}} {}",
            86_400.0 - up
        );
        gauge(
            out,
            "istio_agent_go_goroutines",
            "Number of goroutines that currently exist.",
            format!("{}", 40 + (up as u64 % 7)),
        );
        let _ = writeln!(
            out,
            "# HELP istio_agent_num_outgoing_requests Number of total outgoing requests (e.g. to a token exchange server, CA, etc.)\n\
             # TYPE istio_agent_num_outgoing_requests counter\n\
             istio_agent_num_outgoing_requests{{request_type=\"csr\"}} 1\n\
             # HELP istio_agent_xds_proxy_responses Total number of xDS responses the proxy received from istiod.\n\
             # TYPE istio_agent_xds_proxy_responses counter\n\
             istio_agent_xds_proxy_responses {}\n\
             # HELP istio_agent_process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE istio_agent_process_cpu_seconds_total counter\n\
             istio_agent_process_cpu_seconds_total {:.2}",
            self.xds_responses,
            0.4 + up * 0.002
        );
        gauge(
            out,
            "istio_agent_process_open_fds",
            "Number of open file descriptors.",
            "21".into(),
        );
        gauge(
            out,
            "istio_agent_process_resident_memory_bytes",
            "Resident memory size in bytes.",
            format!("{}", 41_000_000 + (up as u64 % 60) * 4096),
        );
        gauge(
            out,
            "istio_agent_process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            format!("{:.2}", self.started_s),
        );
    }

    fn render_envoy(&self, out: &mut String, now_s: f64) {
        let counter = |out: &mut String,
                       name: &str,
                       by: &str,
                       values: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# TYPE {name} counter");
            for (label, value) in values {
                let _ = writeln!(out, "{name}{{{by}=\"{label}\"}} {value}");
            }
        };
        counter(
            out,
            "envoy_cluster_upstream_cx_total",
            "cluster_name",
            &mut self.upstream_cx.iter().map(|(k, v)| (k.clone(), *v)),
        );
        counter(
            out,
            "envoy_cluster_upstream_rq_total",
            "cluster_name",
            &mut self.upstream_rq.iter().map(|(k, v)| (k.clone(), *v)),
        );
        counter(
            out,
            "envoy_listener_downstream_cx_total",
            "listener_address",
            &mut self.downstream_cx.iter().map(|(k, v)| (k.to_string(), *v)),
        );
        self.standard.render_counters(out);
        let up = (now_s - self.started_s).max(0.0) as u64;
        let _ = writeln!(
            out,
            "# TYPE envoy_cluster_upstream_cx_active gauge\n\
             envoy_cluster_upstream_cx_active{{cluster_name=\"{XDS_CLUSTER}\"}} 1\n\
             # TYPE envoy_server_concurrency gauge\nenvoy_server_concurrency{{}} {}\n\
             # TYPE envoy_server_live gauge\nenvoy_server_live{{}} 1\n\
             # TYPE envoy_server_memory_allocated gauge\nenvoy_server_memory_allocated{{}} {}\n\
             # TYPE envoy_server_total_connections gauge\nenvoy_server_total_connections{{}} 1\n\
             # TYPE envoy_server_uptime gauge\nenvoy_server_uptime{{}} {up}",
            self.workers,
            12_000_000 + self.upstream_cx.values().sum::<u64>() * 64
        );
        self.standard.render_histograms(out);
    }
}
