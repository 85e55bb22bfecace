//! A node's ztunnel connection records (`connection complete`, target `access`) as its
//! `IstioFormat` text layer writes them (istio/ztunnel `src/telemetry.rs`: time, level, target,
//! message, then `k=v` with `Debug`-quoted strings and bare addresses and integers; field order
//! of `ConnectionResult::record_internal` in `src/proxy/metrics.rs`), one per connection, in
//! CRI files as the kubelet lays them out (`<ns>_<pod>_<uid>/istio-proxy/0.log`).

use std::fmt::Write as _;

use super::{Direction, L4Leg, CLUSTER_ID};

/// The text records of one leg's connections; `time` is written as ztunnel's microsecond UTC
/// timestamp. Bytes are from the local app's side (outbound: request bytes are `bytes_sent`).
pub fn ztunnel_access_lines(leg: &L4Leg, time: &str) -> Vec<String> {
    let (s, d) = (&leg.source, &leg.destination);
    let per = |total: u64| total / leg.connections.max(1);
    let (sent, recv, direction) = match leg.direction {
        Direction::Outbound => (per(leg.received_bytes), per(leg.sent_bytes), "outbound"),
        Direction::Inbound => (per(leg.sent_bytes), per(leg.received_bytes), "inbound"),
    };
    let level = if leg.response_flags == "-" {
        "info"
    } else {
        "error"
    };
    (0..leg.connections)
        .map(|i| {
            let mut line = format!("{time}\t{level}\taccess\tconnection complete\t");
            let _ = write!(
                line,
                "src.addr={}:{} src.workload={:?} src.namespace={:?} src.identity={:?} src.cluster={CLUSTER_ID:?} ",
                s.ip, 40000 + i, s.pod, s.namespace, s.principal()
            );
            let _ = write!(
                line,
                "dst.addr={}:15008 dst.hbone_addr={}:{} dst.service={:?} dst.workload={:?} dst.namespace={:?} dst.identity={:?} dst.cluster={CLUSTER_ID:?} ",
                d.ip, d.ip, leg.port, leg.service, d.pod, d.namespace, d.principal()
            );
            let _ = write!(
                line,
                "direction={direction:?} bytes_sent={sent} bytes_recv={recv} duration=\"3ms\""
            );
            line
        })
        .collect()
}

/// A CRI (containerd) line holding `message`, written at `time` (RFC 3339, nanoseconds).
pub fn cri_line(time: &str, message: &str) -> String {
    format!("{time} stdout F {message}\n")
}
