//! Parses the project's own fixtures, written in the shape of Istio's real output: a 15020
//! merged body (agent text, Envoy text, an OpenMetrics app), istiod's 15014, and a body of
//! known bad lines.

use std::collections::HashMap;
use std::path::PathBuf;

use meshtap_textformat::{
    Event, Format, LabelStyle, MetricKind, Parser, SeriesRole, SkipReason, SkippedLine,
    TypedSample, TypedSamples,
};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn typed<'a>(body: &'a [u8], content_type: &str) -> (Vec<TypedSample<'a>>, TypedSamples<'a>) {
    let mut reader = TypedSamples::new(Parser::for_content_type(body, Some(content_type)));
    let samples = reader
        .by_ref()
        .map(|item| item.unwrap_or_else(|skipped| panic!("{skipped}")))
        .collect();
    (samples, reader)
}

fn normalized(sample: &TypedSample<'_>) -> Vec<(String, String)> {
    sample
        .normalized_labels()
        .map(|(name, value)| (name.to_owned(), value.into_owned()))
        .collect()
}

#[test]
fn sidecar_15020_with_an_openmetrics_app_parses_without_bad_lines() {
    let body = fixture("sidecar-15020-openmetrics.txt");
    let (samples, reader) = typed(&body, OPENMETRICS);
    let stats = reader.stats();
    assert_eq!(stats.bad_lines, 0);
    assert_eq!(stats.samples, 56);
    assert_eq!(samples.len(), 56);
    assert_eq!((stats.eofs, stats.lines_after_eof), (1, 0));
    assert_eq!(stats.raw_label_samples, 1);
    assert_eq!(stats.lines, 81);

    let requests: Vec<_> = samples
        .iter()
        .filter(|s| s.family == "istio_requests_total")
        .collect();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|s| s.kind == MetricKind::Counter));
    assert_eq!(requests[0].sample.labels.len(), 25);
    assert_eq!(
        requests[1].sample.labels.get("response_code").unwrap(),
        "503"
    );
    assert_eq!(
        requests[0]
            .sample
            .labels
            .get("grpc_response_status")
            .unwrap(),
        ""
    );

    let live = samples
        .iter()
        .find(|s| s.family == "envoy_server_live")
        .unwrap();
    assert!(live.sample.labels.is_empty());
    assert_eq!(live.kind, MetricKind::Gauge);

    let readout = samples
        .iter()
        .find(|s| s.family == "envoy_server_text_readout")
        .unwrap();
    assert_eq!(readout.sample.labels.style(), LabelStyle::EnvoyRaw);
    assert_eq!(
        readout.sample.labels.get("text_value").unwrap(),
        r#"say "hello" to C:\temp\"#
    );

    let goroutines: Vec<_> = samples
        .iter()
        .filter(|s| s.family == "istio_agent_go_goroutines")
        .map(|s| s.sample.value)
        .collect();
    assert_eq!(goroutines, vec![61.0, 7.0]);
}

#[test]
fn sidecar_istio_histogram_has_ordered_buckets_and_inf_equal_to_count() {
    let body = fixture("sidecar-15020-openmetrics.txt");
    let (samples, _) = typed(&body, OPENMETRICS);
    let duration: Vec<_> = samples
        .iter()
        .filter(|s| s.family == "istio_request_duration_milliseconds")
        .collect();
    assert_eq!(duration.len(), 22);
    assert!(duration.iter().all(|s| s.kind == MetricKind::Histogram));
    let les: Vec<String> = duration
        .iter()
        .filter(|s| matches!(s.role, SeriesRole::Bucket { .. }))
        .map(|s| {
            let labels = normalized(s);
            assert_eq!(labels.len(), 26);
            labels.last().unwrap().1.clone()
        })
        .collect();
    let expected = [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
        "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
    ];
    assert_eq!(les, expected);
    let inf = duration
        .iter()
        .find(|s| s.role == SeriesRole::Bucket { le: f64::INFINITY })
        .unwrap();
    let count = duration
        .iter()
        .find(|s| s.role == SeriesRole::Count)
        .unwrap();
    assert_eq!(inf.sample.value, count.sample.value);
    let sum = duration.iter().find(|s| s.role == SeriesRole::Sum).unwrap();
    assert_eq!(sum.sample.value, 312.5);
}

#[test]
fn sidecar_openmetrics_app_part_keeps_units_timestamps_exemplars() {
    let body = fixture("sidecar-15020-openmetrics.txt");
    let (samples, reader) = typed(&body, OPENMETRICS);
    let orders = samples
        .iter()
        .find(|s| s.sample.name == "shop_orders_total")
        .unwrap();
    assert_eq!(
        (orders.family, orders.role),
        ("shop_orders", SeriesRole::Value)
    );
    assert_eq!(orders.sample.timestamp_ms, Some(1_700_000_000_250));
    let created = samples
        .iter()
        .find(|s| s.sample.name == "shop_orders_created")
        .unwrap();
    assert_eq!(created.role, SeriesRole::Created);

    let latency: Vec<_> = samples
        .iter()
        .filter(|s| s.family == "shop_latency_seconds")
        .collect();
    assert_eq!(latency.len(), 5);
    let exemplar = latency[0].sample.exemplar.unwrap();
    assert_eq!(exemplar.labels.get("trace_id").unwrap(), "4bf92f3577b34da6");
    assert_eq!(exemplar.timestamp_ms, Some(1_700_000_000_100));
    assert_eq!(
        normalized(latency[1]),
        vec![("le".to_owned(), "1".to_owned())]
    );

    let meta = reader.families().get("shop_latency_seconds").unwrap();
    assert_eq!(meta.unit, Some("seconds"));
    assert_eq!(meta.help.unwrap(), "Checkout latency.");
    let xds = samples
        .iter()
        .find(|s| s.role == SeriesRole::Bucket { le: 1e6 })
        .unwrap();
    assert_eq!(normalized(xds)[1], ("le".to_owned(), "1000000".to_owned()));
}

#[test]
fn same_body_under_text_content_type_gives_the_same_samples() {
    let body = fixture("sidecar-15020-openmetrics.txt");
    let (om, _) = typed(&body, OPENMETRICS);
    let (text, _) = typed(&body, TEXT);
    assert_eq!(om.len(), text.len());
    for (a, b) in om.iter().zip(&text) {
        assert_eq!(a.sample.name, b.sample.name);
        assert_eq!(a.sample.timestamp_ms, b.sample.timestamp_ms);
        assert_eq!(normalized(a), normalized(b));
    }
}

#[test]
fn a_body_that_goes_on_after_eof_is_read_to_the_end() {
    let one = fixture("sidecar-15020-openmetrics.txt");
    let twice = [one.as_slice(), one.as_slice()].concat();
    let (samples, reader) = typed(&twice, OPENMETRICS);
    assert_eq!(samples.len(), 112);
    let stats = reader.stats();
    assert_eq!(
        (stats.eofs, stats.lines_after_eof, stats.bad_lines),
        (2, 81, 0)
    );
}

#[test]
fn istiod_15014_families() {
    let body = fixture("istiod-15014.txt");
    let (samples, reader) = typed(&body, TEXT);
    assert_eq!(reader.stats().bad_lines, 0);
    assert_eq!(samples.len(), 26);
    let mut kinds: HashMap<&str, MetricKind> = HashMap::new();
    for s in &samples {
        kinds.insert(s.family, s.kind);
    }
    assert_eq!(kinds.len(), 7);
    assert_eq!(kinds["go_gc_duration_seconds"], MetricKind::Summary);
    assert_eq!(kinds["pilot_proxy_convergence_time"], MetricKind::Histogram);
    assert_eq!(kinds["pilot_xds_pushes"], MetricKind::Counter);
    let quantiles: Vec<f64> = samples
        .iter()
        .filter_map(|s| match s.role {
            SeriesRole::Quantile { quantile } => Some(quantile),
            _ => None,
        })
        .collect();
    assert_eq!(quantiles, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    let help = reader.families().get("istio_build").unwrap().help.unwrap();
    assert_eq!(help, "Istio component build info");
}

#[test]
fn malformed_lines_are_skipped_with_their_reasons() {
    let body = fixture("malformed.txt");
    let mut parser = Parser::new(&body, Format::PrometheusText);
    let skipped: Vec<SkippedLine> = parser.by_ref().filter_map(Result::err).collect();
    let expected = [
        (4, SkipReason::InvalidValue),
        (5, SkipReason::InvalidTypeLine),
        (6, SkipReason::UnknownMetricType),
        (7, SkipReason::MissingLabelValue),
        (8, SkipReason::UnclosedLabelSet),
        (9, SkipReason::MissingValue),
        (10, SkipReason::InvalidMetricName),
        (11, SkipReason::TrailingText),
    ];
    let got: Vec<_> = skipped.iter().map(|s| (s.line_no, s.reason)).collect();
    assert_eq!(got, expected);
    assert_eq!(parser.stats().samples, 8);
    assert_eq!(parser.stats().comments, 1);

    let mut reader = TypedSamples::new(Parser::new(&body, Format::PrometheusText));
    let items: Vec<_> = reader.by_ref().collect();
    let family_skips: Vec<_> = items
        .iter()
        .filter_map(|item| item.as_ref().err())
        .filter(|s| s.line_no > 11)
        .map(|s| (s.line_no, s.reason))
        .collect();
    assert_eq!(
        family_skips,
        vec![
            (13, SkipReason::BucketWithoutLe),
            (14, SkipReason::InvalidBucketBound)
        ]
    );
    let stats = reader.stats();
    assert_eq!((stats.samples, stats.bad_lines), (6, 10));
    let last = items.last().unwrap().as_ref().unwrap();
    assert_eq!((last.sample.name, last.sample.value), ("after_bad", 6.0));
}

#[test]
fn events_come_in_body_order() {
    let body = b"# HELP a A.\n# TYPE a gauge\n# UNIT a bytes\na 1\n# EOF\n";
    let kinds: Vec<&str> = Parser::new(body, Format::OpenMetrics)
        .map(|event| match event.unwrap() {
            Event::Help { .. } => "help",
            Event::Type { .. } => "type",
            Event::Unit { .. } => "unit",
            Event::Sample(_) => "sample",
            Event::Eof => "eof",
        })
        .collect();
    assert_eq!(kinds, ["help", "type", "unit", "sample", "eof"]);
}
