//! What the view shows, computed from the window's totals: per-service request rate, error
//! share and latency quantiles, the service graph's edges, TCP traffic per service, istiod's
//! health and the scrape targets' `up`.
//!
//! Owns the choice of reporter (the destination proxies' view of a service or edge, else the
//! waypoint's in ambient mode, else the source side's, never two added) and the caps on
//! services and edges (highest rate kept). It must not keep state: trends and logs live in
//! their own files; ztunnel's L4 rows are [`super::ambient`]'s.

use std::collections::BTreeMap;

use serde::Serialize;

use super::key_types::{Counter, Gauge, Histogram, ServiceKey, TcpField};
use super::quantile::histogram_quantile;
use super::store::WindowTotals;

/// One row of the summary: a destination service.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceSummary {
    pub service: String,
    /// `destination`; `waypoint` when no server sidecar reports this service (ambient); else
    /// `source`.
    pub reporter: String,
    /// Requests per second over the window.
    pub request_rate: f64,
    /// Share of 5xx answers over the window (`None` without requests).
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Cumulative requests reported by live sources.
    pub requests_total: f64,
    /// Sources (pods or scrape targets) reporting it.
    pub pods: usize,
}

/// One edge of the service graph.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Edge {
    /// The source workload, `workload.namespace`.
    pub source: String,
    pub destination: String,
    pub reporter: String,
    pub request_rate: f64,
    pub error_rate: Option<f64>,
}

/// TCP traffic of one destination service, per second over the window.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TcpService {
    pub service: String,
    pub reporter: String,
    pub sent_bytes_rate: f64,
    pub received_bytes_rate: f64,
    pub opened_rate: f64,
    pub closed_rate: f64,
    pub sent_bytes_total: f64,
    pub received_bytes_total: f64,
}

/// A rate and an increase over the window, with the cumulative total.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CounterRow {
    pub name: String,
    pub rate: f64,
    pub increase: f64,
    pub total: f64,
}

/// istiod, from its scraped series.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ControlPlane {
    /// `pilot_xds_pushes` by `type`.
    pub pushes: Vec<CounterRow>,
    /// Rejects, push errors, write timeouts… by family.
    pub faults: Vec<CounterRow>,
    /// `pilot_xds`, summed over istiods (`None` when no istiod is scraped).
    pub connected_proxies: Option<f64>,
    pub convergence_p50_seconds: Option<f64>,
    pub convergence_p99_seconds: Option<f64>,
}

/// `up` of one scrape target.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetUp {
    pub job: String,
    pub instance: String,
    pub up: bool,
}

/// Rows dropped by the caps.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Dropped {
    pub services: usize,
    pub edges: usize,
    /// ztunnel workload pairs over `view.max_edges`.
    pub ambient_pairs: usize,
}

/// The server side first: a sidecar's `destination`, then an ambient waypoint (which reports
/// each request once, for the server), then the client side.
fn reporter_rank(reporter: &str) -> u8 {
    match reporter {
        "destination" => 0,
        "waypoint" => 1,
        "source" => 2,
        _ => 3,
    }
}

/// Per `K`, the row of the most trusted reporter only.
pub(super) fn prefer_reporter<K: Ord, V>(
    rows: BTreeMap<(K, String), V>,
) -> BTreeMap<K, (String, V)> {
    let mut chosen: BTreeMap<K, (String, V)> = BTreeMap::new();
    for ((key, reporter), row) in rows {
        let better = chosen
            .get(&key)
            .is_none_or(|(current, _)| reporter_rank(&reporter) < reporter_rank(current));
        if better {
            chosen.insert(key, (reporter, row));
        }
    }
    chosen
}

/// All rows in their order, or when over `cap` the `cap` busiest, busiest first; and how
/// many were left out.
pub(super) fn keep_busiest<T>(
    mut rows: Vec<T>,
    cap: usize,
    rate: impl Fn(&T) -> f64,
) -> (Vec<T>, usize) {
    let dropped = rows.len().saturating_sub(cap);
    if dropped > 0 {
        rows.sort_by(|a, b| rate(b).total_cmp(&rate(a)));
        rows.truncate(cap);
    }
    (rows, dropped)
}

#[derive(Default)]
struct RequestSums {
    rate: f64,
    requests: f64,
    errors: f64,
    total: f64,
    sources: usize,
}

impl RequestSums {
    fn error_rate(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }
}

/// Sums the request counters by `key` of their edge.
fn request_sums<K: Ord>(
    totals: &WindowTotals,
    key: impl Fn(&super::key_types::EdgeKey) -> K,
) -> BTreeMap<(K, String), RequestSums> {
    let mut sums: BTreeMap<(K, String), RequestSums> = BTreeMap::new();
    for (counter, total) in &totals.totals {
        let Counter::Requests(edge, errors_only) = counter else {
            continue;
        };
        let sum = sums
            .entry((key(edge), edge.to.reporter.clone()))
            .or_default();
        let increase = totals.increases.get(counter).copied().unwrap_or(0.0);
        if *errors_only {
            sum.errors += increase;
        } else {
            sum.rate += totals.rates.get(counter).copied().unwrap_or(0.0);
            sum.requests += increase;
            sum.total += total;
            sum.sources = sum.sources.max(totals.sources[counter]);
        }
    }
    sums
}

/// Per destination service: rate, error share and quantiles.
pub fn services(totals: &WindowTotals, cap: usize) -> (Vec<ServiceSummary>, usize) {
    let sums = prefer_reporter(request_sums(totals, |edge| edge.to.service.clone()));
    let rows = sums
        .into_iter()
        .map(|(service, (reporter, sum))| {
            let key = Histogram::RequestDuration(ServiceKey {
                service: service.clone(),
                reporter: reporter.clone(),
            });
            let buckets = totals.histograms.get(&key).map_or(&[][..], Vec::as_slice);
            ServiceSummary {
                error_rate: sum.error_rate(),
                p50_ms: histogram_quantile(0.5, buckets),
                p90_ms: histogram_quantile(0.9, buckets),
                p99_ms: histogram_quantile(0.99, buckets),
                service,
                reporter,
                request_rate: sum.rate,
                requests_total: sum.total,
                pods: sum.sources,
            }
        })
        .collect();
    keep_busiest(rows, cap, |s: &ServiceSummary| s.request_rate)
}

/// The service graph's edges.
pub fn edges(totals: &WindowTotals, cap: usize) -> (Vec<Edge>, usize) {
    let sums = prefer_reporter(request_sums(totals, |edge| {
        (edge.source.clone(), edge.to.service.clone())
    }));
    let rows = sums
        .into_iter()
        .map(|((source, destination), (reporter, sum))| Edge {
            source,
            destination,
            reporter,
            request_rate: sum.rate,
            error_rate: sum.error_rate(),
        })
        .collect();
    keep_busiest(rows, cap, |e: &Edge| e.request_rate)
}

/// TCP traffic per destination service.
pub fn tcp(totals: &WindowTotals, cap: usize) -> Vec<TcpService> {
    let mut rows: BTreeMap<(String, String), TcpService> = BTreeMap::new();
    for (counter, total) in &totals.totals {
        let Counter::Tcp(key, field) = counter else {
            continue;
        };
        let row = rows
            .entry((key.service.clone(), key.reporter.clone()))
            .or_default();
        let rate = totals.rates.get(counter).copied().unwrap_or(0.0);
        match field {
            TcpField::SentBytes => {
                row.sent_bytes_rate += rate;
                row.sent_bytes_total += total;
            }
            TcpField::ReceivedBytes => {
                row.received_bytes_rate += rate;
                row.received_bytes_total += total;
            }
            TcpField::Opened => row.opened_rate += rate,
            TcpField::Closed => row.closed_rate += rate,
        }
    }
    let rows = prefer_reporter(rows)
        .into_iter()
        .map(|(service, (reporter, row))| TcpService {
            service,
            reporter,
            ..row
        })
        .collect();
    let rate = |t: &TcpService| t.sent_bytes_rate + t.received_bytes_rate;
    keep_busiest(rows, cap, rate).0
}

fn counter_row(totals: &WindowTotals, counter: &Counter, name: &str) -> CounterRow {
    CounterRow {
        name: name.to_owned(),
        rate: totals.rates.get(counter).copied().unwrap_or(0.0),
        increase: totals.increases.get(counter).copied().unwrap_or(0.0),
        total: totals.totals[counter],
    }
}

/// istiod's pushes, faults, connected proxies and convergence.
pub fn control_plane(totals: &WindowTotals) -> ControlPlane {
    let mut plane = ControlPlane::default();
    for counter in totals.totals.keys() {
        match counter {
            Counter::Pushes(kind) => plane.pushes.push(counter_row(totals, counter, kind)),
            Counter::ControlPlaneFault(name) => {
                plane.faults.push(counter_row(totals, counter, name))
            }
            _ => {}
        }
    }
    plane.pushes.sort_by(|a, b| a.name.cmp(&b.name));
    plane.faults.sort_by(|a, b| a.name.cmp(&b.name));
    plane.connected_proxies = totals.gauges.get(&Gauge::ConnectedProxies).copied();
    let convergence = totals
        .histograms
        .get(&Histogram::Convergence)
        .map_or(&[][..], Vec::as_slice);
    plane.convergence_p50_seconds = histogram_quantile(0.5, convergence);
    plane.convergence_p99_seconds = histogram_quantile(0.99, convergence);
    plane
}

/// Every scrape target's latest `up`.
pub fn targets_up(totals: &WindowTotals) -> Vec<TargetUp> {
    let mut rows: Vec<TargetUp> = totals
        .gauges
        .iter()
        .filter_map(|(gauge, value)| match gauge {
            Gauge::Up(job, instance) => Some(TargetUp {
                job: job.clone(),
                instance: instance.clone(),
                up: *value >= 1.0,
            }),
            Gauge::ConnectedProxies => None,
        })
        .collect();
    rows.sort_by(|a, b| (&a.job, &a.instance).cmp(&(&b.job, &b.instance)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::key_types::EdgeKey;

    #[test]
    fn a_waypoint_counts_before_the_client_side_and_after_a_server_sidecar() {
        let mut totals = WindowTotals::default();
        let mut add = |service: &str, reporter: &str, rate: f64| {
            let edge = EdgeKey {
                source: "cart-v1.store".into(),
                to: ServiceKey {
                    service: service.into(),
                    reporter: reporter.into(),
                },
            };
            let counter = Counter::Requests(edge, false);
            totals.totals.insert(counter.clone(), rate * 10.0);
            totals.rates.insert(counter.clone(), rate);
            totals.sources.insert(counter, 1);
        };
        // catalog is ambient behind a waypoint, inventory has a sidecar.
        add("catalog", "source", 5.0);
        add("catalog", "waypoint", 4.0);
        add("inventory", "waypoint", 3.0);
        add("inventory", "destination", 2.0);
        let rows: Vec<(String, String, f64)> = services(&totals, 10)
            .0
            .into_iter()
            .map(|s| (s.service, s.reporter, s.request_rate))
            .collect();
        assert_eq!(
            rows,
            [
                ("catalog".into(), "waypoint".into(), 4.0),
                ("inventory".into(), "destination".into(), 2.0),
            ]
        );
        let edges = edges(&totals, 10).0;
        assert_eq!(edges[0].reporter, "waypoint");
        assert_eq!(edges[0].request_rate, 4.0);
    }
}
