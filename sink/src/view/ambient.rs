//! The ambient part of the view: ztunnel's L4 traffic per workload pair, from the window's
//! totals of scraped ztunnel `istio_tcp_*` series.
//!
//! Owns the counting rule for ztunnel: a connection between two ambient pods is counted by both
//! nodes' ztunnels, so per pair the server's ztunnel (`destination`) is taken, else the
//! client's (`source`), never both added. Waypoint-reported requests need nothing here: they
//! are request edges with reporter `waypoint` ([`super::live`]). It must not keep state.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::key_types::{Counter, TcpField};
use super::live::{keep_busiest, prefer_reporter};
use super::store::WindowTotals;

/// L4 traffic between two workloads as one ztunnel counted it, per second over the window.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AmbientPair {
    /// `workload.namespace` of the client (the waypoint, for its leg to the server).
    pub source: String,
    /// `workload.namespace` of the server (the waypoint, for the client's leg to it).
    pub destination: String,
    /// The services dialled.
    pub services: Vec<String>,
    /// The ztunnel that counted it: `destination` (the server's) or `source` (the client's).
    pub reporter: String,
    pub opened_rate: f64,
    pub closed_rate: f64,
    /// Request-direction (client to server) bytes per second.
    pub received_bytes_rate: f64,
    /// Response-direction bytes per second.
    pub sent_bytes_rate: f64,
}

#[derive(Default)]
struct PairSums {
    services: BTreeSet<String>,
    row: AmbientPair,
}

/// ztunnel's workload pairs, busiest first when over `cap`.
pub fn pairs(totals: &WindowTotals, cap: usize) -> (Vec<AmbientPair>, usize) {
    let mut sums: BTreeMap<((String, String), String), PairSums> = BTreeMap::new();
    for counter in totals.totals.keys() {
        let Counter::AmbientTcp(key, field) = counter else {
            continue;
        };
        let ends = (key.source.clone(), key.destination.clone());
        let sum = sums.entry((ends, key.reporter.clone())).or_default();
        sum.services.insert(key.service.clone());
        let rate = totals.rates.get(counter).copied().unwrap_or(0.0);
        let row = &mut sum.row;
        match field {
            TcpField::Opened => row.opened_rate += rate,
            TcpField::Closed => row.closed_rate += rate,
            TcpField::ReceivedBytes => row.received_bytes_rate += rate,
            TcpField::SentBytes => row.sent_bytes_rate += rate,
        }
    }
    let rows = prefer_reporter(sums)
        .into_iter()
        .map(|((source, destination), (reporter, sum))| AmbientPair {
            source,
            destination,
            services: sum.services.into_iter().collect(),
            reporter,
            ..sum.row
        })
        .collect();
    keep_busiest(rows, cap, |p: &AmbientPair| {
        p.received_bytes_rate + p.sent_bytes_rate
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::key_types::WorkloadPairKey;

    fn add(totals: &mut WindowTotals, source: &str, destination: &str, reporter: &str, rate: f64) {
        let key = WorkloadPairKey {
            source: source.into(),
            destination: destination.into(),
            service: "reviews.bookinfo.svc.cluster.local".into(),
            reporter: reporter.into(),
        };
        let counter = Counter::AmbientTcp(key, TcpField::SentBytes);
        totals.totals.insert(counter.clone(), rate * 10.0);
        totals.rates.insert(counter, rate);
    }

    #[test]
    fn each_pair_is_counted_by_one_ztunnel() {
        let mut totals = WindowTotals::default();
        // Both nodes' ztunnels saw productpage → reviews; only the client's saw the leg to
        // the waypoint.
        add(
            &mut totals,
            "productpage-v1.bookinfo",
            "reviews-v1.bookinfo",
            "source",
            100.0,
        );
        add(
            &mut totals,
            "productpage-v1.bookinfo",
            "reviews-v1.bookinfo",
            "destination",
            90.0,
        );
        add(
            &mut totals,
            "curl.default",
            "waypoint.bookinfo",
            "source",
            7.0,
        );
        let (rows, dropped) = pairs(&totals, 10);
        assert_eq!(dropped, 0);
        let seen: Vec<(&str, &str, &str, f64)> = rows
            .iter()
            .map(|r| {
                let (s, d, rep) = (
                    r.source.as_str(),
                    r.destination.as_str(),
                    r.reporter.as_str(),
                );
                (s, d, rep, r.sent_bytes_rate)
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("curl.default", "waypoint.bookinfo", "source", 7.0),
                (
                    "productpage-v1.bookinfo",
                    "reviews-v1.bookinfo",
                    "destination",
                    90.0
                ),
            ]
        );
        assert_eq!(rows[1].services, ["reviews.bookinfo.svc.cluster.local"]);
        let (busiest, dropped) = pairs(&totals, 1);
        assert_eq!((busiest.len(), dropped), (1, 1));
        assert_eq!(busiest[0].destination, "reviews-v1.bookinfo");
    }
}
