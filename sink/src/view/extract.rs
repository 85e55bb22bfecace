//! From one source's samples (a report's or a scrape's, after the scrape merge rule) to the
//! cumulative values the view keeps: requests per graph edge, request latency and TCP
//! counters per destination service, ztunnel's L4 counters per workload pair (ambient mode),
//! istiod's push counters, connected proxies and convergence histogram, and scrape `up`.
//!
//! Owns which families the view reads and how their labels become keys. It must not keep
//! state between calls nor compute rates (that is [`super::store`]).

use std::collections::HashMap;

use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{is_stale_marker, Sample};

/// A sample as the view reads it: a report's [`Sample`] or a scrape's [`ExportSample`].
pub trait SampleLabels {
    fn name(&self) -> &str;
    fn label(&self, name: &str) -> Option<&str>;
    fn le(&self) -> Option<&str>;
    fn value(&self) -> f64;
}

impl SampleLabels for Sample {
    fn name(&self) -> &str {
        &self.series.name
    }
    fn label(&self, name: &str) -> Option<&str> {
        self.series.labels.get(name)
    }
    fn le(&self) -> Option<&str> {
        self.series.le.as_deref()
    }
    fn value(&self) -> f64 {
        self.value
    }
}

impl SampleLabels for ExportSample {
    fn name(&self) -> &str {
        self.label("__name__").unwrap_or_default()
    }
    fn label(&self, name: &str) -> Option<&str> {
        match &self.series {
            ExportSeries::Labels(id) => match name {
                "__name__" => Some(&id.name),
                "le" => id.le.as_deref(),
                _ => id.labels.get(name),
            },
            ExportSeries::Encoded(series) => series.get(name),
        }
    }
    fn le(&self) -> Option<&str> {
        self.label("le")
    }
    fn value(&self) -> f64 {
        self.value
    }
}

/// Istio's request counter and latency histogram, and its TCP counters.
const REQUESTS: &str = "istio_requests_total";
const DURATION_BUCKET: &str = "istio_request_duration_milliseconds_bucket";
const CONVERGENCE_BUCKET: &str = "pilot_proxy_convergence_time_bucket";

/// istiod's counters of pushes that failed, were rejected or timed out (with or without the
/// `_total` suffix istiod's exporters add or leave out).
const CONTROL_PLANE_FAULTS: [&str; 6] = [
    "pilot_xds_push_errors",
    "pilot_total_xds_rejects",
    "pilot_total_xds_internal_errors",
    "pilot_xds_write_timeout",
    "pilot_xds_push_context_errors",
    "pilot_xds_expired_nonce",
];

/// One direction of Istio's TCP counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpField {
    SentBytes,
    ReceivedBytes,
    Opened,
    Closed,
}

impl TcpField {
    fn of_family(name: &str) -> Option<TcpField> {
        Some(match name {
            "istio_tcp_sent_bytes_total" => TcpField::SentBytes,
            "istio_tcp_received_bytes_total" => TcpField::ReceivedBytes,
            "istio_tcp_connections_opened_total" => TcpField::Opened,
            "istio_tcp_connections_closed_total" => TcpField::Closed,
            _ => return None,
        })
    }
}

/// A destination service as one reporter saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub service: String,
    /// `destination`, `source` or `waypoint`.
    pub reporter: String,
}

/// A connection between two workloads as one ztunnel saw it: the client's (`source`) or the
/// server's (`destination`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadPairKey {
    /// `workload.namespace` of both ends (through a waypoint, the waypoint is one of them).
    pub source: String,
    pub destination: String,
    /// The service dialled.
    pub service: String,
    pub reporter: String,
}

/// Requests from a source workload to a destination service, as one reporter saw them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub source: String,
    pub to: ServiceKey,
}

/// A cumulative counter the view reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// `istio_requests_total`; `true` counts 5xx answers only, `false` all of them.
    Requests(EdgeKey, bool),
    /// Sidecars' and waypoints' `istio_tcp_*`.
    Tcp(ServiceKey, TcpField),
    /// ztunnel's `istio_tcp_*` (ambient L4).
    AmbientTcp(WorkloadPairKey, TcpField),
    /// `pilot_xds_pushes` by `type`.
    Pushes(String),
    /// One of [`CONTROL_PLANE_FAULTS`], or a `pilot_xds_*_reject` counter, by family name.
    ControlPlaneFault(String),
}

/// A cumulative histogram the view reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Histogram {
    /// `istio_request_duration_milliseconds` per destination service.
    RequestDuration(ServiceKey),
    /// `pilot_proxy_convergence_time` (seconds).
    Convergence,
}

/// A gauge the view reads (the latest value counts).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gauge {
    /// `pilot_xds`: proxies connected to an istiod.
    ConnectedProxies,
    /// `up` of a scrape target: (job, instance).
    Up(String, String),
}

/// Cumulative bucket counts by `le` (ascending, `+Inf` last).
pub type Buckets = Vec<(f64, f64)>;

/// What one source's samples at one time say.
#[derive(Debug, Default)]
pub struct Values {
    pub counters: HashMap<Counter, f64>,
    pub histograms: HashMap<Histogram, Buckets>,
    pub gauges: HashMap<Gauge, f64>,
}

/// The name without the `_total` suffix some exporters add to counters.
fn base_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// The service a series is about (`destination_service`, else `destination_service_name`)
/// and its reporter, borrowed from the sample.
fn service_of(sample: &impl SampleLabels) -> (&str, &str) {
    let service = sample
        .label("destination_service")
        .or_else(|| sample.label("destination_service_name"))
        .unwrap_or("unknown");
    (service, sample.label("reporter").unwrap_or_default())
}

/// [`service_of`] as a key.
fn service_key(sample: &impl SampleLabels) -> ServiceKey {
    let (service, reporter) = service_of(sample);
    ServiceKey {
        service: service.to_owned(),
        reporter: reporter.to_owned(),
    }
}

/// The request-duration buckets of consecutive samples of one service: a histogram's buckets
/// come one after another, so they are gathered under a key compared as text, and the key is
/// built and hashed once per run rather than per bucket.
#[derive(Default)]
struct DurationRun(Option<(ServiceKey, Buckets)>);

impl DurationRun {
    /// Adds a bucket of `sample`'s service, after moving a run of another service into
    /// `histograms`.
    fn add(
        &mut self,
        histograms: &mut HashMap<Histogram, Buckets>,
        sample: &impl SampleLabels,
        le: f64,
        count: f64,
    ) {
        let (service, reporter) = service_of(sample);
        let same = self
            .0
            .as_ref()
            .is_some_and(|(key, _)| key.service == service && key.reporter == reporter);
        if !same {
            self.flush(histograms);
            self.0 = Some((service_key(sample), Buckets::new()));
        }
        let (_, buckets) = self.0.as_mut().expect("a run was started");
        add_bucket(buckets, le, count);
    }

    /// Moves the run's buckets into `histograms` (added to what its service holds there).
    fn flush(&mut self, histograms: &mut HashMap<Histogram, Buckets>) {
        let Some((key, buckets)) = self.0.take() else {
            return;
        };
        let held = histograms
            .entry(Histogram::RequestDuration(key))
            .or_default();
        if held.is_empty() {
            *held = buckets;
        } else {
            for (le, count) in buckets {
                add_bucket(held, le, count);
            }
        }
    }
}

/// The `source` or `destination` workload of a series, as `workload.namespace` (Kiali's node
/// name).
fn workload(sample: &impl SampleLabels, side: &str) -> String {
    let workload = sample
        .label(&format!("{side}_workload"))
        .unwrap_or("unknown");
    match sample.label(&format!("{side}_workload_namespace")) {
        Some(namespace) => format!("{workload}.{namespace}"),
        None => workload.to_owned(),
    }
}

/// Whether a series comes from ztunnel: scraped from a pod labelled `app=ztunnel` (the sink's
/// ztunnel job and Istio's usual pod job carry the pod label), or carrying the locality labels
/// only ztunnel's `istio_tcp_*` have.
fn is_ztunnel(sample: &impl SampleLabels) -> bool {
    sample.label("app") == Some("ztunnel") || sample.label("destination_zone").is_some()
}

fn add_bucket(buckets: &mut Buckets, le: f64, count: f64) {
    match buckets.binary_search_by(|(bound, _)| bound.total_cmp(&le)) {
        Ok(at) => buckets[at].1 += count,
        Err(at) => buckets.insert(at, (le, count)),
    }
}

impl Values {
    /// Reads the families the view knows from `samples`; anything else is skipped.
    pub fn of_samples(samples: &[impl SampleLabels]) -> Values {
        let mut values = Values::default();
        let mut durations = DurationRun::default();
        for sample in samples {
            if sample.value().is_nan() || is_stale_marker(sample.value()) {
                continue;
            }
            values.add(sample, &mut durations);
        }
        durations.flush(&mut values.histograms);
        values
    }

    fn add(&mut self, sample: &impl SampleLabels, durations: &mut DurationRun) {
        let name = sample.name();
        let value = sample.value();
        let le = sample.le().and_then(|le| le.parse().ok());
        let counter = match name {
            REQUESTS => {
                let edge = EdgeKey {
                    source: workload(sample, "source"),
                    to: service_key(sample),
                };
                let is_error = sample
                    .label("response_code")
                    .is_some_and(|code| code.starts_with('5'));
                if is_error {
                    self.add_counter(Counter::Requests(edge.clone(), true), value);
                }
                Some(Counter::Requests(edge, false))
            }
            DURATION_BUCKET => {
                if let Some(le) = le {
                    durations.add(&mut self.histograms, sample, le, value);
                }
                None
            }
            CONVERGENCE_BUCKET => {
                if let Some(le) = le {
                    let buckets = self.histograms.entry(Histogram::Convergence).or_default();
                    add_bucket(buckets, le, value);
                }
                None
            }
            "up" => {
                let label = |n: &str| sample.label(n).unwrap_or_default().to_owned();
                let gauge = Gauge::Up(label("job"), label("instance"));
                self.gauges.insert(gauge, value);
                None
            }
            "pilot_xds" => {
                *self.gauges.entry(Gauge::ConnectedProxies).or_default() += value;
                None
            }
            _ => self.other_counter(name, sample),
        };
        if let Some(counter) = counter {
            self.add_counter(counter, value);
        }
    }

    /// TCP and istiod counters.
    fn other_counter(&self, name: &str, sample: &impl SampleLabels) -> Option<Counter> {
        if let Some(field) = TcpField::of_family(name) {
            if is_ztunnel(sample) {
                let pair = WorkloadPairKey {
                    source: workload(sample, "source"),
                    destination: workload(sample, "destination"),
                    service: service_key(sample).service,
                    reporter: sample.label("reporter").unwrap_or_default().to_owned(),
                };
                return Some(Counter::AmbientTcp(pair, field));
            }
            return Some(Counter::Tcp(service_key(sample), field));
        }
        let base = base_name(name);
        if base == "pilot_xds_pushes" {
            let kind = sample.label("type").unwrap_or("unknown");
            return Some(Counter::Pushes(kind.to_owned()));
        }
        let is_reject = base.starts_with("pilot_xds_") && base.ends_with("_reject");
        (is_reject || CONTROL_PLANE_FAULTS.contains(&base))
            .then(|| Counter::ControlPlaneFault(base.to_owned()))
    }

    fn add_counter(&mut self, counter: Counter, value: f64) {
        *self.counters.entry(counter).or_default() += value;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use meshtap_remotewrite::series::{SeriesId, SeriesLabels};

    fn sample(name: &str, labels: &[(&str, &str)], le: Option<&str>, value: f64) -> Sample {
        let mut pairs: Vec<_> = labels
            .iter()
            .map(|(n, v)| (Arc::from(*n), Arc::from(*v)))
            .collect();
        pairs.sort();
        Sample {
            series: SeriesId {
                name: Arc::from(name),
                labels: Arc::new(SeriesLabels::from_sorted(pairs)),
                le: le.map(Arc::from),
            },
            value,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn reads_requests_pushes_faults_and_up() {
        let request = |code| {
            [
                ("destination_service", "reviews.default.svc.cluster.local"),
                ("reporter", "destination"),
                ("response_code", code),
                ("source_workload", "productpage-v1"),
                ("source_workload_namespace", "default"),
            ]
        };
        let values = Values::of_samples(&[
            sample(REQUESTS, &request("200"), None, 7.0),
            sample(REQUESTS, &request("503"), None, 3.0),
            sample("pilot_xds_pushes", &[("type", "cds")], None, 4.0),
            sample("pilot_xds_pushes_total", &[("type", "cds")], None, 1.0),
            sample("pilot_xds_cds_reject", &[], None, 2.0),
            sample("pilot_xds_write_timeout_total", &[], None, 1.0),
            sample(
                "up",
                &[("instance", "a:15014"), ("job", "istiod")],
                None,
                1.0,
            ),
            sample(CONVERGENCE_BUCKET, &[], Some("+Inf"), 9.0),
            sample(CONVERGENCE_BUCKET, &[], Some("0.1"), 5.0),
            sample("unrelated_total", &[], None, 1.0),
        ]);
        let edge = EdgeKey {
            source: "productpage-v1.default".into(),
            to: ServiceKey {
                service: "reviews.default.svc.cluster.local".into(),
                reporter: "destination".into(),
            },
        };
        assert_eq!(
            values.counters[&Counter::Requests(edge.clone(), false)],
            10.0
        );
        assert_eq!(values.counters[&Counter::Requests(edge, true)], 3.0);
        assert_eq!(values.counters[&Counter::Pushes("cds".into())], 5.0);
        let fault = |n: &str| values.counters[&Counter::ControlPlaneFault(n.into())];
        assert_eq!(fault("pilot_xds_cds_reject"), 2.0);
        assert_eq!(fault("pilot_xds_write_timeout"), 1.0);
        assert_eq!(values.counters.len(), 5);
        assert_eq!(
            values.gauges[&Gauge::Up("istiod".into(), "a:15014".into())],
            1.0
        );
        assert_eq!(
            values.histograms[&Histogram::Convergence],
            vec![(0.1, 5.0), (f64::INFINITY, 9.0)]
        );
    }

    /// Duration buckets of two services in runs that come back (A, B, A, by another
    /// reporter, A again) sum per service, reporter and bound.
    #[test]
    fn duration_buckets_sum_per_service_across_runs() {
        let bucket = |service: &str, reporter: &str, le: &str, value: f64| {
            let labels = [("destination_service", service), ("reporter", reporter)];
            sample(DURATION_BUCKET, &labels, Some(le), value)
        };
        let values = Values::of_samples(&[
            bucket("a", "destination", "1", 1.0),
            bucket("a", "destination", "+Inf", 2.0),
            bucket("b", "destination", "1", 10.0),
            bucket("a", "destination", "5", 4.0),
            bucket("a", "destination", "+Inf", 8.0),
            bucket("a", "source", "1", 100.0),
            bucket("a", "destination", "1", 16.0),
        ]);
        let key = |service: &str, reporter: &str| {
            Histogram::RequestDuration(ServiceKey {
                service: service.into(),
                reporter: reporter.into(),
            })
        };
        assert_eq!(values.histograms.len(), 3);
        assert_eq!(
            values.histograms[&key("a", "destination")],
            vec![(1.0, 17.0), (5.0, 4.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(
            values.histograms[&key("b", "destination")],
            vec![(1.0, 10.0)]
        );
        assert_eq!(values.histograms[&key("a", "source")], vec![(1.0, 100.0)]);
    }

    #[test]
    fn ztunnel_tcp_counts_per_workload_pair_apart_from_sidecar_tcp() {
        let tcp = |extra: &[(&'static str, &'static str)]| {
            let mut labels = vec![
                ("destination_service", "mysql.data.svc.cluster.local"),
                ("destination_workload", "mysql-v1"),
                ("destination_workload_namespace", "data"),
                ("reporter", "destination"),
                ("source_workload", "reviews-v1"),
                ("source_workload_namespace", "shop"),
            ];
            labels.extend_from_slice(extra);
            labels
        };
        let values = Values::of_samples(&[
            sample("istio_tcp_sent_bytes_total", &tcp(&[]), None, 10.0),
            sample(
                "istio_tcp_sent_bytes_total",
                &tcp(&[("app", "ztunnel")]),
                None,
                20.0,
            ),
            sample(
                "istio_tcp_sent_bytes_total",
                &tcp(&[("destination_zone", "us-east1-b")]),
                None,
                5.0,
            ),
        ]);
        let service = ServiceKey {
            service: "mysql.data.svc.cluster.local".into(),
            reporter: "destination".into(),
        };
        let pair = WorkloadPairKey {
            source: "reviews-v1.shop".into(),
            destination: "mysql-v1.data".into(),
            service: service.service.clone(),
            reporter: "destination".into(),
        };
        assert_eq!(
            values.counters[&Counter::Tcp(service, TcpField::SentBytes)],
            10.0
        );
        assert_eq!(
            values.counters[&Counter::AmbientTcp(pair, TcpField::SentBytes)],
            25.0
        );
        assert_eq!(values.counters.len(), 2);
    }
}
