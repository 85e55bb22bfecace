//! Istio's standard families as a sidecar's native stats filter exposes them on
//! `:15020/stats/prometheus`: `istio_requests_total`, the three request histograms and the four
//! `istio_tcp_*` counters, per label set, with labels in the order Envoy writes them (the
//! reference capture's: `response_code` first, canonical names last).
//!
//! Tallies and renders only; which labels a call gets is `standard_labels.rs`' business.

use std::collections::BTreeMap;
use std::fmt::Write;

use meshtap_report::schema::DEFAULT_BUCKETS;

use super::histogram::Histogram;
use super::standard_labels::{HttpLabels, TcpLabels};

/// Picks one histogram of a series.
type HistogramOf = fn(&HttpSeries) -> &Histogram;

#[derive(Clone, Debug)]
struct HttpSeries {
    requests: u64,
    duration_ms: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl Default for HttpSeries {
    fn default() -> Self {
        HttpSeries {
            requests: 0,
            duration_ms: Histogram::new(&DEFAULT_BUCKETS),
            request_bytes: Histogram::new(&DEFAULT_BUCKETS),
            response_bytes: Histogram::new(&DEFAULT_BUCKETS),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TcpSeries {
    opened: u64,
    closed: u64,
    sent_bytes: u64,
    received_bytes: u64,
}

/// One request as the standard families count it.
pub struct HttpObservation {
    pub duration_ms: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// One TCP connection, opened and closed, with its bytes each way.
pub struct TcpObservation {
    /// Client → server bytes (`istio_tcp_received_bytes_total`).
    pub received_bytes: u64,
    /// Server → client bytes (`istio_tcp_sent_bytes_total`).
    pub sent_bytes: u64,
}

/// Every standard series one sidecar holds.
#[derive(Clone, Debug, Default)]
pub struct StandardStats {
    http: BTreeMap<String, HttpSeries>,
    tcp: BTreeMap<String, TcpSeries>,
}

impl StandardStats {
    pub fn record_http(&mut self, labels: &HttpLabels, seen: &HttpObservation) {
        let series = self.http.entry(labels.render()).or_default();
        series.requests += 1;
        series.duration_ms.observe(seen.duration_ms as f64);
        series.request_bytes.observe(seen.request_bytes as f64);
        series.response_bytes.observe(seen.response_bytes as f64);
    }

    pub fn record_tcp(&mut self, labels: &TcpLabels, seen: &TcpObservation) {
        let series = self.tcp.entry(labels.render()).or_default();
        series.opened += 1;
        series.closed += 1;
        series.sent_bytes += seen.sent_bytes;
        series.received_bytes += seen.received_bytes;
    }

    /// The counter families, each under its `# TYPE` line (Envoy writes counters, then
    /// gauges, then histograms). Families without series are left out, as Envoy does.
    pub fn render_counters(&self, out: &mut String) {
        render_counter(out, "istio_requests_total", &self.http, |s| s.requests);
        render_counter(out, "istio_tcp_connections_opened_total", &self.tcp, |s| {
            s.opened
        });
        render_counter(out, "istio_tcp_connections_closed_total", &self.tcp, |s| {
            s.closed
        });
        render_counter(out, "istio_tcp_received_bytes_total", &self.tcp, |s| {
            s.received_bytes
        });
        render_counter(out, "istio_tcp_sent_bytes_total", &self.tcp, |s| {
            s.sent_bytes
        });
    }

    /// The three request histograms.
    pub fn render_histograms(&self, out: &mut String) {
        let histograms: [(&str, HistogramOf); 3] = [
            ("istio_request_bytes", |s| &s.request_bytes),
            ("istio_request_duration_milliseconds", |s| &s.duration_ms),
            ("istio_response_bytes", |s| &s.response_bytes),
        ];
        for (name, histogram) in histograms {
            if self.http.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, series) in &self.http {
                histogram(series).render(out, name, labels);
            }
        }
    }
}

fn render_counter<S>(
    out: &mut String,
    name: &str,
    series: &BTreeMap<String, S>,
    value: impl Fn(&S) -> u64,
) {
    if series.is_empty() {
        return;
    }
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, s) in series {
        let _ = writeln!(out, "{name}{{{labels}}} {}", value(s));
    }
}
