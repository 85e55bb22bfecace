//! What the parser yields for each meaningful line: metadata, samples and end markers.
//!
//! Owns the event and metric-type vocabulary. It must not parse text.

use crate::labels::{EscapedStr, Labels};

/// A metric type from a `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` (OpenMetrics), `untyped` (text 0.0.4), or no `# TYPE` line at all.
    Unknown,
}

impl MetricKind {
    /// The type named on a `# TYPE` line (lower case, as both formats write it).
    pub fn from_type_name(name: &str) -> Option<MetricKind> {
        Some(match name {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "gaugehistogram" => MetricKind::GaugeHistogram,
            "summary" => MetricKind::Summary,
            "info" => MetricKind::Info,
            "stateset" => MetricKind::StateSet,
            "unknown" | "untyped" => MetricKind::Unknown,
            _ => return None,
        })
    }

    /// The `prometheus.MetricMetadata.MetricType` number remote-write metadata uses.
    pub fn remote_write_type(self) -> i32 {
        match self {
            MetricKind::Unknown => 0,
            MetricKind::Counter => 1,
            MetricKind::Gauge => 2,
            MetricKind::Histogram => 3,
            MetricKind::GaugeHistogram => 4,
            MetricKind::Summary => 5,
            MetricKind::Info => 6,
            MetricKind::StateSet => 7,
        }
    }
}

/// An OpenMetrics exemplar (`# {trace_id="..."} 0.5 1.7e9` after a sample).
#[derive(Clone, Copy, Debug)]
pub struct Exemplar<'a> {
    pub labels: Labels<'a>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The series name as written (`istio_requests_total`, `envoy_server_live`).
    pub name: &'a str,
    /// The line's series text exactly as written: from the first byte of the name to the end
    /// of the label block (`name{a="b"}`), or the name alone. Equal texts name one series.
    pub series_text: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    /// Milliseconds since the epoch, already converted from OpenMetrics seconds.
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
}

/// One meaningful line of an exposition.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// `# HELP <family> <text>`.
    Help {
        family: &'a str,
        text: EscapedStr<'a>,
    },
    /// `# TYPE <family> <type>`.
    Type {
        family: &'a str,
        kind: MetricKind,
    },
    /// `# UNIT <family> <unit>` (OpenMetrics).
    Unit {
        family: &'a str,
        unit: &'a str,
    },
    Sample(Sample<'a>),
    /// `# EOF`. Parsing goes on after it (see the crate docs).
    Eof,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_map_to_kinds_and_remote_write_numbers() {
        assert_eq!(
            MetricKind::from_type_name("untyped"),
            Some(MetricKind::Unknown)
        );
        assert_eq!(
            MetricKind::from_type_name("gaugehistogram"),
            Some(MetricKind::GaugeHistogram)
        );
        assert_eq!(MetricKind::from_type_name("Counter"), None);
        assert_eq!(
            MetricKind::from_type_name("histogram").map(MetricKind::remote_write_type),
            Some(3)
        );
        assert_eq!(MetricKind::Summary.remote_write_type(), 5);
    }
}
