//! From one source's samples (a report's or a scrape's, after the scrape merge rule) to the
//! cumulative values the view keeps: requests per graph edge, request latency and TCP
//! counters per destination service, ztunnel's L4 counters per workload pair (ambient mode),
//! istiod's push counters, connected proxies and convergence histogram, and scrape `up`.
//!
//! Owns which families the view reads and how their labels become keys. It must not keep
//! state between calls nor compute rates (that is [`super::store`]).

use foldhash::HashMap;
use std::sync::Arc;

use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{is_stale_marker, Sample};

/// A sample as the view reads it: a report's [`Sample`] or a scrape's [`ExportSample`].
pub trait SampleLabels {
    fn name(&self) -> &str;
    fn label(&self, name: &str) -> Option<&str>;
    fn le(&self) -> Option<&str>;
    fn value(&self) -> f64;
    /// The identity of the labels other than `__name__` and `le`, which a histogram's buckets
    /// share: two samples of one slice with the same identity have the same such labels.
    fn shared_labels_id(&self) -> usize;
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
    fn shared_labels_id(&self) -> usize {
        Arc::as_ptr(&self.series.labels) as usize
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
    fn shared_labels_id(&self) -> usize {
        match &self.series {
            ExportSeries::Labels(id) => Arc::as_ptr(&id.labels) as usize,
            ExportSeries::Encoded(series) => series.shared_labels_id(),
        }
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

/// The service a series is about: `destination_service`, else `destination_service_name`.
fn service_key(sample: &impl SampleLabels) -> ServiceKey {
    let service = sample
        .label("destination_service")
        .or_else(|| sample.label("destination_service_name"))
        .unwrap_or("unknown");
    ServiceKey {
        service: service.to_owned(),
        reporter: sample.label("reporter").unwrap_or_default().to_owned(),
    }
}

/// The end of a connection a workload label names.
#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

/// The `source` or `destination` workload of a series, as `workload.namespace` (Kiali's node
/// name).
fn workload(sample: &impl SampleLabels, side: Side) -> String {
    let (workload, namespace) = match side {
        Side::Source => ("source_workload", "source_workload_namespace"),
        Side::Destination => ("destination_workload", "destination_workload_namespace"),
    };
    let workload = sample.label(workload).unwrap_or("unknown");
    match sample.label(namespace) {
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

/// The buckets of one request-duration histogram being read (see
/// [`Values::add_duration_bucket`]).
struct PendingDuration {
    labels_id: usize,
    service: ServiceKey,
    buckets: Buckets,
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
        let mut pending: Option<PendingDuration> = None;
        for sample in samples {
            if sample.value().is_nan() || is_stale_marker(sample.value()) {
                continue;
            }
            let name = sample.name();
            if name == DURATION_BUCKET {
                values.add_duration_bucket(&mut pending, sample);
            } else {
                values.add(name, sample);
            }
        }
        values.flush_duration(pending);
        values
    }

    /// A bucket of `istio_request_duration_milliseconds`: a histogram's buckets come one after
    /// the other and share their other labels, so they are summed aside and its service key is
    /// made once per histogram, not once per bucket.
    fn add_duration_bucket(
        &mut self,
        pending: &mut Option<PendingDuration>,
        sample: &impl SampleLabels,
    ) {
        let Some(le) = sample.le().and_then(|le| le.parse().ok()) else {
            return;
        };
        let labels_id = sample.shared_labels_id();
        if pending.as_ref().is_none_or(|p| p.labels_id != labels_id) {
            self.flush_duration(pending.take());
            *pending = Some(PendingDuration {
                labels_id,
                service: service_key(sample),
                buckets: Buckets::new(),
            });
        }
        let pending = pending.as_mut().expect("set above");
        add_bucket(&mut pending.buckets, le, sample.value());
    }

    fn flush_duration(&mut self, pending: Option<PendingDuration>) {
        let Some(pending) = pending else {
            return;
        };
        let histogram = Histogram::RequestDuration(pending.service);
        let buckets = self.histograms.entry(histogram).or_default();
        for (le, count) in pending.buckets {
            add_bucket(buckets, le, count);
        }
    }

    fn add(&mut self, name: &str, sample: &impl SampleLabels) {
        let value = sample.value();
        let counter = match name {
            REQUESTS => {
                let edge = EdgeKey {
                    source: workload(sample, Side::Source),
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
            CONVERGENCE_BUCKET => {
                if let Some(le) = sample.le().and_then(|le| le.parse().ok()) {
                    let buckets = self.histograms.entry(Histogram::Convergence);
                    add_bucket(buckets.or_default(), le, value);
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
                    source: workload(sample, Side::Source),
                    destination: workload(sample, Side::Destination),
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

    /// Scraped duration buckets share their label set per histogram; histograms of one service
    /// from two sources, interleaved with other series, add up bucket by bucket.
    #[test]
    fn request_duration_buckets_add_up_per_service_across_histograms() {
        use meshtap_remotewrite::encoded_series::LabelInterner;
        let mut interner = LabelInterner::default();
        let mut bucket = |source: &str, le: &str, value: f64| {
            let series = interner.series([
                ("__name__", DURATION_BUCKET),
                ("destination_service", "reviews.default.svc.cluster.local"),
                ("le", le),
                ("reporter", "destination"),
                ("source_workload", source),
            ]);
            ExportSample {
                series: ExportSeries::Encoded(Arc::new(series)),
                value,
                timestamp_ms: 0,
            }
        };
        let samples = [
            bucket("a", "10", 1.0),
            bucket("a", "+Inf", 2.0),
            bucket("b", "10", 4.0),
            bucket("b", "+Inf", 8.0),
            bucket("a", "10", 16.0),
        ];
        assert_eq!(
            samples[0].shared_labels_id(),
            samples[1].shared_labels_id(),
            "a histogram's buckets share their labels"
        );
        assert_ne!(samples[1].shared_labels_id(), samples[2].shared_labels_id());
        let values = Values::of_samples(&samples);
        let service = ServiceKey {
            service: "reviews.default.svc.cluster.local".into(),
            reporter: "destination".into(),
        };
        assert_eq!(
            values.histograms[&Histogram::RequestDuration(service)],
            vec![(10.0, 21.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(values.histograms.len(), 1);
    }
}
