//! The keys the view sums samples by (requests per graph edge, TCP counters per service or
//! workload pair, histograms, gauges) and how a series' labels make them.
//!
//! Owns the key types and the label rules behind them (which label names a service, a
//! workload, a ztunnel). It must not read sample values nor keep state.

use super::sample_labels::SampleLabels;

/// One direction of Istio's TCP counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpField {
    SentBytes,
    ReceivedBytes,
    Opened,
    Closed,
}

impl TcpField {
    pub fn of_family(name: &str) -> Option<TcpField> {
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
    /// One of istiod's push-fault counters, or a `pilot_xds_*_reject` counter, by family name
    /// without `_total`.
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

/// The service a series is about: `destination_service`, else `destination_service_name`.
pub fn service_key(sample: &impl SampleLabels) -> ServiceKey {
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

/// The edge of an `istio_requests_total` series, and whether it counts 5xx answers.
pub fn request_edge(sample: &impl SampleLabels) -> (EdgeKey, bool) {
    let edge = EdgeKey {
        source: workload(sample, Side::Source),
        to: service_key(sample),
    };
    let is_error = sample
        .label("response_code")
        .is_some_and(|code| code.starts_with('5'));
    (edge, is_error)
}

/// The counter of an `istio_tcp_*` series: per workload pair from ztunnel, else per service.
pub fn tcp_counter(sample: &impl SampleLabels, field: TcpField) -> Counter {
    if is_ztunnel(sample) {
        let pair = WorkloadPairKey {
            source: workload(sample, Side::Source),
            destination: workload(sample, Side::Destination),
            service: service_key(sample).service,
            reporter: sample.label("reporter").unwrap_or_default().to_owned(),
        };
        return Counter::AmbientTcp(pair, field);
    }
    Counter::Tcp(service_key(sample), field)
}
