//! Independent check of our remote-write sample bodies: a body built by `RequestEncoder::encode`
//! (reported series: labels spliced from per-set cached bytes, compressed block by block;
//! scraped series: labels written as snappy copies of their last occurrence) is decoded by
//! `protodecode/decode.py` with Python's `protobuf` package against `protodecode/remote.proto`
//! (declared from Prometheus' published schema) after snappy-block decompression, and must give
//! exactly what a plain prost encoding of the same series gives, decoded the same way. A wrong
//! field number, length, label order or block boundary cannot pass by agreeing with itself.
//! Needs python3 with grpcio-tools, protobuf and cramjam (`cargo xtask test` installs them).

use std::sync::Arc;

use meshtap_remotewrite::encoded_series::LabelInterner;
use meshtap_remotewrite::encoder::{compress_into, RequestEncoder};
use meshtap_remotewrite::proto;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{stale_nan, Sample, SeriesId, SeriesLabels, Text};
use prost::Message;
use serde_json::{json, Value};

#[path = "protodecode/run.rs"]
mod protodecode;
use protodecode::{decode_with_python, Wire};

fn text(s: &str) -> Text {
    Arc::from(s)
}

/// A label set of Istio's size: 25 family labels and the target labels, some values long.
fn label_set(i: usize) -> Arc<SeriesLabels> {
    let mut pairs: Vec<(Text, Text)> = (0..25)
        .map(|j| {
            (
                text(&format!("label_{j:02}")),
                text(&format!("value-{j}-{}", "x".repeat(i % 7 * j))),
            )
        })
        .collect();
    pairs.push((text("namespace"), text("bookinfo")));
    pairs.push((text("pod"), text(&format!("reviews-v{i}-5d8f7b9c4-abcde"))));
    pairs.push((text("quote"), text("é ☃ \"quoted\"\n")));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Arc::new(SeriesLabels::from_sorted(pairs))
}

/// Histograms, counters, stale markers and zero values over interleaved label sets, long
/// enough to span several 64 KiB snappy blocks.
fn samples() -> Vec<Sample> {
    let sets: Vec<Arc<SeriesLabels>> = (0..12).map(label_set).collect();
    let les = ["0.5", "1", "10", "1800000", "+Inf"];
    let mut samples = Vec::new();
    for round in 0..6_i64 {
        for (i, labels) in sets.iter().enumerate() {
            let ts = 1_700_000_000_000 + round * 15_000 + i as i64;
            let sample = |name: &str, le: Option<&str>, value: f64| Sample {
                series: SeriesId {
                    name: text(name),
                    labels: labels.clone(),
                    le: le.map(text),
                },
                value,
                timestamp_ms: ts,
            };
            for (b, le) in les.iter().enumerate() {
                samples.push(sample(
                    "istio_request_duration_milliseconds_bucket",
                    Some(le),
                    (b as i64 * round) as f64,
                ));
            }
            samples.push(sample(
                "istio_request_duration_milliseconds_sum",
                None,
                -0.25 * (round + 1) as f64,
            ));
            samples.push(sample(
                "istio_request_duration_milliseconds_count",
                None,
                0.0,
            ));
            let counter = if i % 5 == 4 {
                stale_nan()
            } else {
                1e15 + round as f64
            };
            samples.push(sample("istio_requests_total", None, counter));
        }
    }
    samples
}

/// The straightforward request: prost messages built label by label.
fn prost_request(samples: &[Sample], external: &[(String, String)]) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries: samples
            .iter()
            .map(|s| {
                let mut labels = Vec::new();
                s.series.visit_labels(external, |n, v| {
                    labels.push(proto::Label {
                        name: n.into(),
                        value: v.into(),
                    })
                });
                proto::TimeSeries {
                    labels,
                    samples: vec![proto::Sample {
                        value: s.value,
                        timestamp: s.timestamp_ms,
                    }],
                }
            })
            .collect(),
        metadata: Vec::new(),
    }
}

/// The samples as the exporter queues them.
fn queued(samples: &[Sample]) -> Vec<ExportSample> {
    samples.iter().map(ExportSample::from).collect()
}

/// The samples as the scrape stage queues them: labels encoded and interned (one interner, as
/// for one target), `__name__` and `le` among them.
fn scraped(samples: &[Sample]) -> Vec<ExportSample> {
    let mut interner = LabelInterner::default();
    samples
        .iter()
        .map(|s| {
            let mut labels = Vec::new();
            s.series
                .visit_labels(&[], |n, v| labels.push((n.to_owned(), v.to_owned())));
            let series = interner.series(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            ExportSample {
                series: ExportSeries::Encoded(Arc::new(series)),
                value: s.value,
                timestamp_ms: s.timestamp_ms,
            }
        })
        .collect()
}

#[test]
fn python_decodes_our_body_as_the_prost_encoding_of_the_same_series() {
    assert_python_decodes_as_prost(queued, "reported");
}

#[test]
fn python_decodes_scraped_series_written_as_copies_as_the_prost_encoding() {
    assert_python_decodes_as_prost(scraped, "scraped");
}

#[test]
fn python_decodes_reported_and_scraped_series_in_one_body() {
    let mixed = |samples: &[Sample]| {
        let mut out = scraped(samples);
        for (i, sample) in samples.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
            out[i] = ExportSample::from(sample);
        }
        out
    };
    assert_python_decodes_as_prost(mixed, "mixed");
}

fn assert_python_decodes_as_prost(export: impl Fn(&[Sample]) -> Vec<ExportSample>, name: &str) {
    let samples = samples();
    let external: Vec<(String, String)> = [("cluster", "c1"), ("pod", "ignored: series own it")]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let mut encoder = RequestEncoder::new();
    let ours = encoder.encode(&export(&samples), &external).to_vec();

    let request = prost_request(&samples, &external);
    let mut reference = Vec::new();
    compress_into(
        &mut snap::raw::Encoder::new(),
        &request.encode_to_vec(),
        &mut reference,
    );

    let mut decoded = decode_with_python(Wire::RemoteWrite, &ours, name);
    let mut expected = decode_with_python(Wire::RemoteWrite, &reference, &format!("{name}-prost"));
    // The decoded requests must be the same; the raw lengths are compared apart.
    let raw_bytes = decoded
        .as_object_mut()
        .unwrap()
        .remove("raw_bytes")
        .unwrap();
    expected.as_object_mut().unwrap().remove("raw_bytes");
    assert_eq!(decoded, expected);

    // The reference decodes to the series that went in (so the comparison is not vacuous).
    assert!(
        raw_bytes.as_u64().unwrap() > 4 * 65_536,
        "the body spans several snappy blocks"
    );
    assert_eq!(decoded["unknown_fields"], 0);
    assert_eq!(decoded["metadata"], json!([]));
    let series = decoded["timeseries"].as_array().unwrap();
    assert_eq!(series.len(), samples.len());
    let first = &series[0];
    let first_labels = first["labels"].as_array().unwrap();
    assert_eq!(first_labels.len(), 25 + 3 + 3);
    assert_eq!(
        first_labels[0],
        json!(["__name__", "istio_request_duration_milliseconds_bucket"])
    );
    assert_eq!(first_labels[1], json!(["cluster", "c1"]));
    assert!(first_labels.contains(&json!(["le", "0.5"])));
    assert!(first_labels.contains(&json!(["pod", "reviews-v0-5d8f7b9c4-abcde"])));
    assert!(first_labels.contains(&json!(["quote", "é ☃ \"quoted\"\n"])));
    let names: Vec<&str> = first_labels
        .iter()
        .map(|l| l[0].as_str().unwrap())
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "labels sorted: {names:?}"
    );
    for (got, sample) in series.iter().zip(&samples) {
        assert_eq!(
            got["samples"],
            json!([[
                format!("{:016x}", sample.value.to_bits()),
                sample.timestamp_ms
            ]])
        );
    }
}

#[test]
fn negative_zero_is_sent_with_its_sign() {
    // prost leaves a proto3 double out when it equals 0.0, which drops the sign of -0.0; the
    // encoder writes every value whose bits are not all zero, so Prometheus gets -0.0 back.
    let labels = Arc::new(SeriesLabels::from_sorted(vec![(text("pod"), text("p-1"))]));
    let samples: Vec<Sample> = [-0.0, 0.0]
        .into_iter()
        .map(|value| Sample {
            series: SeriesId {
                name: text("m"),
                labels: labels.clone(),
                le: None,
            },
            value,
            timestamp_ms: 7,
        })
        .collect();
    let body = RequestEncoder::new()
        .encode(&queued(&samples), &[])
        .to_vec();
    let decoded = decode_with_python(Wire::RemoteWrite, &body, "negative-zero");
    let values: Vec<&Value> = decoded["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["samples"][0][0])
        .collect();
    assert_eq!(
        values,
        [&json!("8000000000000000"), &json!("0000000000000000")]
    );
}
