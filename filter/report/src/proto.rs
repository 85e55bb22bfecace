//! Protobuf messages of the filter → sink report, declared with prost derives.
//!
//! A report is a *cumulative snapshot*: every series carries its total since the proxy started
//! (`proxy_start_ms`), merged over all worker VMs of the proxy. A sink can therefore lose or
//! repeat a report without corrupting counters, and sees a restarted proxy as a counter reset.
//!
//! Field numbers are the wire contract: never renumber, only add.
//!
//! Label values travel in one of two forms per series: inline (`Series.label_values`, one string
//! per label name) or by reference (`Series.label_refs`, one index per label name into the
//! report-level `Report.strings` table). The reference form keeps a report with thousands of
//! series from repeating the same 25 values in every series of every family; senders may mix
//! forms, receivers must accept both.

/// One report from one proxy (one pod).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Report {
    /// Always [`crate::PROTOCOL_VERSION`].
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    /// Who is reporting, taken from the proxy's node metadata.
    #[prost(message, optional, tag = "2")]
    pub proxy: Option<Proxy>,
    /// When this proxy's counters started (ms since the Unix epoch). A change means a reset.
    #[prost(int64, tag = "3")]
    pub proxy_start_ms: i64,
    /// When the report was built (ms since the Unix epoch); the samples' timestamp.
    #[prost(int64, tag = "4")]
    pub timestamp_ms: i64,
    /// Increases by one per report of a proxy lifetime.
    #[prost(uint64, tag = "5")]
    pub sequence: u64,
    /// The filter's report interval, so the sink can judge when a pod went silent.
    #[prost(uint32, tag = "6")]
    pub interval_ms: u32,
    /// The metric families, each with its cumulative series.
    #[prost(message, repeated, tag = "7")]
    pub families: Vec<MetricFamily>,
    /// The filter's own accounting (series in use, overflow, workers).
    #[prost(message, optional, tag = "8")]
    pub stats: Option<FilterStats>,
    /// Access-log records since the previous report (filter-shipped access logs). Unlike the
    /// metrics these are not cumulative: each record is sent once.
    #[prost(message, repeated, tag = "9")]
    pub access_logs: Vec<AccessLogRecord>,
    /// The report's string table: label values that series reference by index through
    /// [`Series::label_refs`] instead of repeating them in every series of every family.
    /// Empty when no series uses references.
    #[prost(string, repeated, tag = "10")]
    pub strings: Vec<String>,
    /// Which plugin instance of the proxy reports: [`CHANNEL_HTTP`] (empty, the HTTP filter) or
    /// [`CHANNEL_TCP`] (the network filter). The two run apart in Envoy (own root contexts, maybe
    /// own VMs), so each has its own lifetime, sequence and series; a receiver tracks order and
    /// staleness per (pod, channel). Their families never overlap.
    #[prost(string, tag = "11")]
    pub channel: String,
}

/// [`Report::channel`] of the HTTP filter's reports.
pub const CHANNEL_HTTP: &str = "";
/// [`Report::channel`] of the network (TCP) filter's reports.
pub const CHANNEL_TCP: &str = "tcp";

/// Identity of the reporting proxy, from Envoy's node metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Proxy {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub pod: String,
    #[prost(string, tag = "3")]
    pub workload: String,
    /// Envoy's `node.id`, for example `sidecar~10.1.2.3~pod.ns~ns.svc.cluster.local`.
    #[prost(string, tag = "4")]
    pub node_id: String,
    #[prost(string, tag = "5")]
    pub cluster_id: String,
    #[prost(string, tag = "6")]
    pub istio_version: String,
    #[prost(string, tag = "7")]
    pub mesh_id: String,
    /// Filter build version (`CARGO_PKG_VERSION` of the filter).
    #[prost(string, tag = "8")]
    pub filter_version: String,
    /// The pod's IPs from node metadata `INSTANCE_IPS` (comma-separated there), first is primary.
    #[prost(string, repeated, tag = "9")]
    pub instance_ips: Vec<String>,
}

/// The type of a metric family, as remote-write metadata knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricKind {
    Unspecified = 0,
    Counter = 1,
    Gauge = 2,
    Histogram = 3,
}

/// A metric family: a name, its label names in emission order, and its series.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    /// Prometheus name, for example `istio_requests_total` or `istio_request_bytes`
    /// (histograms carry the base name; the sink adds `_bucket`, `_sum`, `_count`).
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "MetricKind", tag = "2")]
    pub kind: i32,
    #[prost(string, tag = "3")]
    pub help: String,
    /// Label names in Istio's order; every series has exactly this many values.
    #[prost(string, repeated, tag = "4")]
    pub label_names: Vec<String>,
    /// Histogram upper bounds, strictly increasing, without `+Inf`.
    #[prost(double, repeated, tag = "5")]
    pub bounds: Vec<f64>,
    #[prost(message, repeated, tag = "6")]
    pub series: Vec<Series>,
}

/// One series of a family: label values and its cumulative value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Series {
    /// Values in the order of [`MetricFamily::label_names`]. Empty strings are allowed (Istio
    /// emits `source_version=""` for a missing local label); the sink drops them on export.
    #[prost(string, repeated, tag = "1")]
    pub label_values: Vec<String>,
    /// Counter or gauge value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Histogram: per-bucket (not cumulative) counts, one per bound plus the `+Inf` bucket.
    #[prost(uint64, repeated, tag = "3")]
    pub bucket_counts: Vec<u64>,
    /// Histogram: exact sum of the observed values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// The label values as indexes into [`Report::strings`] (packed varints), in the order of
    /// [`MetricFamily::label_names`]. A series carries either `label_values` or `label_refs`,
    /// never both; [`crate::decode`] resolves references into `label_values`, so consumers of
    /// decoded reports only ever see `label_values`.
    #[prost(uint32, repeated, tag = "5")]
    pub label_refs: Vec<u32>,
}

/// The filter's own accounting, exported by the sink as per-pod self-metrics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FilterStats {
    /// Distinct label sets currently held (all families of one label set count once).
    #[prost(uint64, tag = "1")]
    pub series_active: u64,
    /// The configured `max_series`.
    #[prost(uint64, tag = "2")]
    pub series_limit: u64,
    /// Observations folded into the overflow series because `max_series` was reached.
    #[prost(uint64, tag = "3")]
    pub overflow_observations: u64,
    /// Worker VMs whose totals are in this report (live ones).
    #[prost(uint32, tag = "4")]
    pub worker_vms: u32,
    /// Worker VMs that went away and whose totals were folded into the proxy's base.
    #[prost(uint32, tag = "5")]
    pub retired_vms: u32,
    /// Report posts that failed or timed out since the proxy started.
    #[prost(uint64, tag = "6")]
    pub reports_failed: u64,
    /// Series evicted after being idle (their sink series go stale).
    #[prost(uint64, tag = "7")]
    pub series_evicted: u64,
    /// Access-log records not shipped because of `access_log.max_per_interval` or the
    /// in-VM bound (counted, never silently lost).
    #[prost(uint64, tag = "8")]
    pub access_logs_dropped: u64,
    /// Label values recorded as `other` because their label reached its `label_limits` cap.
    #[prost(uint64, tag = "9")]
    pub label_values_capped: u64,
}

/// One request as the filter saw it in the access-log phase, carrying the fields of Istio's
/// default access-log format. Empty strings mean "absent" (Envoy prints `-`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AccessLogRecord {
    /// `%START_TIME%`, ns since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub start_time_ns: i64,
    #[prost(string, tag = "2")]
    pub method: String,
    /// `X-ENVOY-ORIGINAL-PATH` or `:path`.
    #[prost(string, tag = "3")]
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2`, …
    #[prost(string, tag = "4")]
    pub protocol: String,
    #[prost(uint32, tag = "5")]
    pub response_code: u32,
    /// Envoy's short flag string; empty when no flag is set.
    #[prost(string, tag = "6")]
    pub response_flags: String,
    #[prost(string, tag = "7")]
    pub response_code_details: String,
    #[prost(string, tag = "8")]
    pub connection_termination_details: String,
    #[prost(string, tag = "9")]
    pub upstream_transport_failure_reason: String,
    #[prost(uint64, tag = "10")]
    pub bytes_received: u64,
    #[prost(uint64, tag = "11")]
    pub bytes_sent: u64,
    /// `%DURATION%` in ms; absent when the stream has no duration.
    #[prost(uint64, optional, tag = "12")]
    pub duration_ms: Option<u64>,
    /// The `x-envoy-upstream-service-time` response header.
    #[prost(string, tag = "13")]
    pub upstream_service_time: String,
    #[prost(string, tag = "14")]
    pub x_forwarded_for: String,
    #[prost(string, tag = "15")]
    pub user_agent: String,
    #[prost(string, tag = "16")]
    pub request_id: String,
    #[prost(string, tag = "17")]
    pub authority: String,
    #[prost(string, tag = "18")]
    pub upstream_host: String,
    #[prost(string, tag = "19")]
    pub upstream_cluster: String,
    #[prost(string, tag = "20")]
    pub upstream_local_address: String,
    #[prost(string, tag = "21")]
    pub downstream_local_address: String,
    #[prost(string, tag = "22")]
    pub downstream_remote_address: String,
    #[prost(string, tag = "23")]
    pub requested_server_name: String,
    #[prost(string, tag = "24")]
    pub route_name: String,
    #[prost(string, tag = "25")]
    pub source_workload: String,
    #[prost(string, tag = "26")]
    pub source_namespace: String,
    #[prost(string, tag = "27")]
    pub destination_workload: String,
    #[prost(string, tag = "28")]
    pub destination_namespace: String,
    /// `source` or `destination`: which sidecar logged it.
    #[prost(string, tag = "29")]
    pub reporter: String,
}
