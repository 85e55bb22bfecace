//! A node's ztunnel connection records (`connection complete`, target `access`) as its
//! `IstioFormat` text layer writes them (istio/ztunnel `src/telemetry.rs`: time, level, target,
//! message, then `k=v` with `Debug`-quoted strings and bare addresses and integers; field order
//! of `ConnectionResult::record_internal` in `src/proxy/metrics.rs`), one per connection, in
//! CRI files as the kubelet lays them out (`<ns>_<pod>_<uid>/istio-proxy/0.log`).

use std::fmt::Write as _;

use super::{Direction, L4Leg};

/// The text records of one leg's connections; `time` is written as ztunnel's microsecond UTC
/// timestamp. Bytes are from the local app's side (outbound: request bytes are `bytes_sent`).
/// HBONE legs name both identities and the HBONE target (`dst.addr` is the next hop's `:15008`);
/// plain TCP legs have neither, and `dst.addr` is the original destination.
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
                "src.addr={}:{} src.workload={:?} src.namespace={:?} ",
                s.ip,
                40000 + i,
                s.pod,
                s.namespace
            );
            if leg.mtls {
                let _ = write!(line, "src.identity={:?} ", s.identity);
            }
            let _ = write!(line, "src.cluster={:?} ", s.cluster);
            if leg.mtls {
                let _ = write!(
                    line,
                    "dst.addr={}:15008 dst.hbone_addr={}:{} ",
                    d.ip, d.ip, leg.port
                );
            } else {
                let _ = write!(line, "dst.addr={}:{} ", d.ip, leg.port);
            }
            let _ = write!(
                line,
                "dst.service={:?} dst.workload={:?} dst.namespace={:?} ",
                leg.service, d.pod, d.namespace
            );
            if leg.mtls {
                let _ = write!(line, "dst.identity={:?} ", d.identity);
            }
            let _ = write!(
                line,
                "dst.cluster={:?} direction={direction:?} bytes_sent={sent} bytes_recv={recv} duration=\"3ms\"",
                d.cluster
            );
            line
        })
        .collect()
}

/// A CRI (containerd) line holding `message`, written at `time` (RFC 3339, nanoseconds).
pub fn cri_line(time: &str, message: &str) -> String {
    format!("{time} stdout F {message}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ambient::AmbientPeer;
    use meshtap_logformat::ztunnel::{parse_ztunnel_access_log, FieldValue};

    fn peer(name: &str, ip: &str) -> AmbientPeer {
        AmbientPeer {
            workload: name.to_owned(),
            pod: format!("{name}-54bb874995-hbj5v"),
            namespace: "default".to_owned(),
            canonical_service: name.to_owned(),
            canonical_revision: "v1".to_owned(),
            identity: format!("spiffe://cluster.local/ns/default/sa/{name}"),
            cluster: "Kubernetes".to_owned(),
            ip: ip.to_owned(),
            region: "r".to_owned(),
            zone: "z".to_owned(),
        }
    }

    /// The field names, order and quoting of the reference record (ztunnel's own formatter,
    /// `/work/shared/reference/ambient/ztunnel-access.log`, HBONE outbound line).
    #[test]
    fn records_have_ztunnels_fields_in_its_order_and_quoting() {
        let leg = L4Leg {
            direction: Direction::Outbound,
            source: peer("curl", "10.244.1.12"),
            destination: peer("productpage", "10.244.1.17"),
            service: "productpage.default.svc.cluster.local".to_owned(),
            port: 9080,
            connections: 2,
            received_bytes: 172,
            sent_bytes: 10586,
            response_flags: "-".to_owned(),
            mtls: true,
        };
        let lines = ztunnel_access_lines(&leg, "2026-09-21T14:03:17.482913Z");
        assert_eq!(lines.len(), 2);
        let record = parse_ztunnel_access_log(&lines[0]).unwrap();
        assert_eq!(
            (record.level.as_str(), record.message.as_str()),
            ("info", "connection complete")
        );
        let shape: Vec<(&str, &str)> = record
            .fields
            .iter()
            .map(|(name, value)| {
                let kind = match value {
                    FieldValue::Quoted(_) => "quoted",
                    FieldValue::Bare(_) | FieldValue::Number(_) => "bare",
                };
                (name.as_str(), kind)
            })
            .collect();
        let want = [
            ("src.addr", "bare"),
            ("src.workload", "quoted"),
            ("src.namespace", "quoted"),
            ("src.identity", "quoted"),
            ("src.cluster", "quoted"),
            ("dst.addr", "bare"),
            ("dst.hbone_addr", "bare"),
            ("dst.service", "quoted"),
            ("dst.workload", "quoted"),
            ("dst.namespace", "quoted"),
            ("dst.identity", "quoted"),
            ("dst.cluster", "quoted"),
            ("direction", "quoted"),
            ("bytes_sent", "bare"),
            ("bytes_recv", "bare"),
            ("duration", "quoted"),
        ];
        assert_eq!(shape, want);
        assert!(lines[0].contains("dst.addr=10.244.1.17:15008 dst.hbone_addr=10.244.1.17:9080"));
        assert!(lines[0].contains("bytes_sent=86 bytes_recv=5293"));
        assert!(cri_line("2026-09-21T14:03:17.483047761Z", &lines[0]).ends_with("\"3ms\"\n"));
    }
}
