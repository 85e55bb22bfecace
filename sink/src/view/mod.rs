//! The in-memory view for the demo: recent cumulative request counts and latency histograms
//! per pod, summarised per destination service on `GET /v1/summary`.
//!
//! Owns the snapshots and the rate/error/latency arithmetic over a trailing window. It reads
//! only `istio_requests_total` and `istio_request_duration_milliseconds` and must never feed
//! anything back into export.

mod config;
pub mod http;
mod quantile;
mod render;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use meshtap_report::schema::{REQUESTS_TOTAL, REQUEST_DURATION};
use meshtap_report::{MetricFamily, Report};
use serde::Serialize;

pub use config::ViewConfig;
pub use quantile::histogram_quantile;
pub use render::render_table;

use crate::floor::ReporterKey;

/// (destination service, reporter).
type ServiceKey = (String, String);

#[derive(Clone, Debug, Default)]
struct ServiceTotals {
    requests: f64,
    errors: f64,
    bounds: Vec<f64>,
    /// Per-bucket duration counts.
    duration_counts: Vec<u64>,
}

#[derive(Debug)]
struct Snapshot {
    timestamp_ms: i64,
    proxy_start_ms: i64,
    services: HashMap<ServiceKey, ServiceTotals>,
}

/// One row of the summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceSummary {
    pub service: String,
    /// `destination`, or `source` when no destination proxy reports this service.
    pub reporter: String,
    /// Requests per second over the window.
    pub request_rate: f64,
    /// Share of 5xx answers over the window (`None` without requests).
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Cumulative requests reported by live pods.
    pub requests_total: f64,
    pub pods: usize,
}

/// The summary document of `/v1/summary`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub window_seconds: f64,
    pub services: Vec<ServiceSummary>,
}

/// Snapshots per pod.
pub struct SummaryView {
    window_ms: i64,
    pods: Mutex<HashMap<ReporterKey, VecDeque<Snapshot>>>,
}

fn label_index(family: &MetricFamily, name: &str) -> Option<usize> {
    family.label_names.iter().position(|n| n == name)
}

/// The service a series is about: `destination_service`, else `destination_service_name`.
fn service_of(values: &[String], service: Option<usize>, service_name: Option<usize>) -> String {
    let pick = |i: Option<usize>| i.map(|i| values[i].as_str()).filter(|v| !v.is_empty());
    pick(service)
        .or_else(|| pick(service_name))
        .unwrap_or("unknown")
        .to_owned()
}

fn totals_of(report: &Report) -> HashMap<ServiceKey, ServiceTotals> {
    let mut services: HashMap<ServiceKey, ServiceTotals> = HashMap::new();
    for family in &report.families {
        let is_requests = family.name == REQUESTS_TOTAL;
        if !is_requests && family.name != REQUEST_DURATION {
            continue;
        }
        let reporter = label_index(family, "reporter");
        let service = label_index(family, "destination_service");
        let service_name = label_index(family, "destination_service_name");
        let code = label_index(family, "response_code");
        for series in &family.series {
            let v = &series.label_values;
            let key = (
                service_of(v, service, service_name),
                reporter.map(|i| v[i].clone()).unwrap_or_default(),
            );
            let totals = services.entry(key).or_default();
            if is_requests {
                totals.requests += series.value;
                if code.is_some_and(|i| v[i].starts_with('5')) {
                    totals.errors += series.value;
                }
            } else {
                if totals.bounds != family.bounds {
                    totals.bounds = family.bounds.clone();
                    totals.duration_counts = vec![0; family.bounds.len() + 1];
                }
                for (sum, n) in totals.duration_counts.iter_mut().zip(&series.bucket_counts) {
                    *sum += n;
                }
            }
        }
    }
    services
}

#[derive(Default)]
struct Accumulated {
    rate: f64,
    requests_delta: f64,
    errors_delta: f64,
    requests_total: f64,
    bounds: Vec<f64>,
    duration_delta: Vec<u64>,
    pods: usize,
}

impl SummaryView {
    pub fn new(config: &ViewConfig) -> SummaryView {
        SummaryView {
            window_ms: config.window.get().as_millis() as i64,
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// Records an accepted report.
    pub fn record(&self, pod: &ReporterKey, report: &Report) {
        let snapshot = Snapshot {
            timestamp_ms: report.timestamp_ms,
            proxy_start_ms: report.proxy_start_ms,
            services: totals_of(report),
        };
        let mut pods = self.pods.lock().expect("view lock");
        let history = pods.entry(pod.clone()).or_default();
        history.push_back(snapshot);
        // Keep the newest snapshot at or before the window start as the base.
        let window_start = report.timestamp_ms - self.window_ms;
        while history.len() > 2 && history[1].timestamp_ms <= window_start {
            history.pop_front();
        }
    }

    /// Forgets a reporter that went silent.
    pub fn remove_reporter(&self, pod: &ReporterKey) {
        self.pods.lock().expect("view lock").remove(pod);
    }

    /// Rates, error shares and latency quantiles per service over the window.
    pub fn summary(&self) -> Summary {
        let pods = self.pods.lock().expect("view lock");
        let mut acc: BTreeMap<ServiceKey, Accumulated> = BTreeMap::new();
        for history in pods.values() {
            let Some(latest) = history.back() else {
                continue;
            };
            let base = history.front().filter(|b| {
                b.timestamp_ms < latest.timestamp_ms && b.proxy_start_ms == latest.proxy_start_ms
            });
            let dt_s = base.map(|b| (latest.timestamp_ms - b.timestamp_ms) as f64 / 1000.0);
            for (key, now) in &latest.services {
                let before = base.and_then(|b| b.services.get(key));
                let a = acc.entry(key.clone()).or_default();
                a.pods += 1;
                a.requests_total += now.requests;
                let Some(dt_s) = dt_s else { continue };
                let requests = now.requests - before.map_or(0.0, |b| b.requests);
                a.rate += requests / dt_s;
                a.requests_delta += requests;
                a.errors_delta += now.errors - before.map_or(0.0, |b| b.errors);
                if !now.bounds.is_empty() {
                    if a.bounds.is_empty() {
                        a.bounds = now.bounds.clone();
                        a.duration_delta = vec![0; now.duration_counts.len()];
                    }
                    if a.bounds == now.bounds {
                        let old = before.filter(|b| b.bounds == now.bounds);
                        for (i, n) in now.duration_counts.iter().enumerate() {
                            let prev = old.map_or(0, |b| b.duration_counts[i]);
                            a.duration_delta[i] += n.saturating_sub(prev);
                        }
                    }
                }
            }
        }
        // Per service, prefer the destination proxies' view, then the source side.
        let mut chosen: BTreeMap<String, (String, Accumulated)> = BTreeMap::new();
        for ((service, reporter), a) in acc {
            let rank = |r: &str| match r {
                "destination" => 0,
                "source" => 1,
                _ => 2,
            };
            let better = chosen
                .get(&service)
                .is_none_or(|(current, _)| rank(&reporter) < rank(current));
            if better {
                chosen.insert(service, (reporter, a));
            }
        }
        let services = chosen
            .into_iter()
            .map(|(service, (reporter, a))| ServiceSummary {
                service,
                reporter,
                request_rate: a.rate,
                error_rate: (a.requests_delta > 0.0).then(|| a.errors_delta / a.requests_delta),
                p50_ms: histogram_quantile(0.5, &a.bounds, &a.duration_delta),
                p99_ms: histogram_quantile(0.99, &a.bounds, &a.duration_delta),
                requests_total: a.requests_total,
                pods: a.pods,
            })
            .collect();
        Summary {
            window_seconds: self.window_ms as f64 / 1000.0,
            services,
        }
    }
}
