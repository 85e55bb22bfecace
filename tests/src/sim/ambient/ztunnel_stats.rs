//! A node's ztunnel `:15020/metrics` body, as prometheus-client 0.24 encodes ztunnel's registry
//! (istio/ztunnel `src/app.rs` registration order; `src/proxy/metrics.rs` label order with the
//! four locality labels last; HELP texts with the registry's trailing `.`; counters sampled as
//! `_total` under a TYPE line without it; no timestamps; `# EOF`). Health families (`process_*`,
//! `istio_build`, `istio_xds_*`, `workload_manager_*`) come with fixed plausible values.

use std::fmt::Write as _;

use super::{Direction, L4Leg};

/// The build tag ztunnel reports in `istio_build`.
pub const ZTUNNEL_TAG: &str = "1.31.0";

/// The body for the legs one ztunnel saw; `active_proxies` = ambient pods on its node.
pub fn ztunnel_metrics_body(legs: &[L4Leg], active_proxies: usize) -> String {
    let mut out = String::with_capacity(4096 + legs.len() * 2048);
    family(
        &mut out,
        "process_open_fds",
        "Number of open file descriptors",
        "gauge",
    );
    out.push_str("process_open_fds 47\n");
    family(
        &mut out,
        "process_max_fds",
        "Maximum number of file descriptors",
        "gauge",
    );
    out.push_str("process_max_fds 1048576\n");
    family(
        &mut out,
        "istio_build",
        "Istio component build info.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "istio_build{{component=\"ztunnel\",tag=\"{ZTUNNEL_TAG}\"}} 1"
    );
    family(
        &mut out,
        "istio_xds_connection_terminations",
        "The total number of completed connections to xds server (unstable).",
        "counter",
    );
    out.push_str("istio_xds_connection_terminations_total{reason=\"Reconnect\"} 2\n");
    family(
        &mut out,
        "istio_xds_message",
        "Total number of messages received (unstable).",
        "counter",
    );
    out.push_str(
        "istio_xds_message_total{url=\"type.googleapis.com/istio.workload.Address\"} 12\n",
    );
    let tcp: [TcpFamily; 4] = [
        (
            "istio_tcp_connections_opened",
            "The total number of TCP connections opened.",
            |l| l.connections,
        ),
        (
            "istio_tcp_connections_closed",
            "The total number of TCP connections closed.",
            |l| l.connections,
        ),
        (
            "istio_tcp_received_bytes",
            "The size of total bytes received during request in case of a TCP connection.",
            |l| l.received_bytes,
        ),
        (
            "istio_tcp_sent_bytes",
            "The size of total bytes sent during response in case of a TCP connection.",
            |l| l.sent_bytes,
        ),
    ];
    for (name, help, value) in tcp {
        if legs.is_empty() {
            continue;
        }
        family(&mut out, name, help, "counter");
        for leg in legs {
            let _ = writeln!(
                out,
                "{name}_total{{{}}} {}",
                traffic_labels(leg),
                value(leg)
            );
        }
    }
    family(
        &mut out,
        "workload_manager_active_proxy_count",
        "The total number current workloads with active proxies (unstable).",
        "gauge",
    );
    let _ = writeln!(out, "workload_manager_active_proxy_count {active_proxies}");
    family(
        &mut out,
        "workload_manager_pending_proxy_count",
        "The total number current workloads with pending proxies (unstable).",
        "gauge",
    );
    out.push_str("workload_manager_pending_proxy_count 0\n# EOF\n");
    out
}

/// An `istio_tcp_*` family: name, HELP text, and its value for a leg.
type TcpFamily = (&'static str, &'static str, fn(&L4Leg) -> u64);

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The 27 labels of `CommonTrafficLabels` + `LocalityLabels`, in ztunnel's order and spelling
/// (`source_app`/`source_version` copy the canonical name/revision; `request_protocol` is
/// always `tcp`; HBONE legs are `mutual_tls` with the source principal from the certificate,
/// plain TCP legs `unknown` for both; empty values are `unknown`, ztunnel's `DefaultedUnknown`).
pub fn traffic_labels(leg: &L4Leg) -> String {
    let (s, d) = (&leg.source, &leg.destination);
    let (source_principal, policy) = if leg.mtls {
        (s.identity.clone(), "mutual_tls")
    } else {
        ("unknown".to_owned(), "unknown")
    };
    let (service_name, service_namespace) = leg
        .service
        .split_once('.')
        .map(|(name, rest)| (name, rest.split('.').next().unwrap_or_default()))
        .unwrap_or(("unknown", "unknown"));
    let reporter = match leg.direction {
        Direction::Outbound => "source",
        Direction::Inbound => "destination",
    };
    let pairs = [
        ("reporter", reporter.to_owned()),
        ("source_workload", s.workload.clone()),
        ("source_canonical_service", s.canonical_service.clone()),
        ("source_canonical_revision", s.canonical_revision.clone()),
        ("source_workload_namespace", s.namespace.clone()),
        ("source_principal", source_principal),
        ("source_app", s.canonical_service.clone()),
        ("source_version", s.canonical_revision.clone()),
        ("source_cluster", s.cluster.clone()),
        ("destination_service", leg.service.clone()),
        (
            "destination_service_namespace",
            service_namespace.to_owned(),
        ),
        ("destination_service_name", service_name.to_owned()),
        ("destination_workload", d.workload.clone()),
        ("destination_canonical_service", d.canonical_service.clone()),
        (
            "destination_canonical_revision",
            d.canonical_revision.clone(),
        ),
        ("destination_workload_namespace", d.namespace.clone()),
        ("destination_principal", d.identity.clone()),
        ("destination_app", d.canonical_service.clone()),
        ("destination_version", d.canonical_revision.clone()),
        ("destination_cluster", d.cluster.clone()),
        ("request_protocol", "tcp".to_owned()),
        ("response_flags", leg.response_flags.clone()),
        ("connection_security_policy", policy.to_owned()),
        ("source_region", s.region.clone()),
        ("source_zone", s.zone.clone()),
        ("destination_region", d.region.clone()),
        ("destination_zone", d.zone.clone()),
    ];
    let rendered: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = if value.is_empty() {
                "unknown"
            } else {
                value.as_str()
            };
            format!("{name}=\"{value}\"")
        })
        .collect();
    rendered.join(",")
}
