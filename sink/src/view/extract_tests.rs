//! Unit tests of [`super`]: each family's keys, and a cached read of repeated scrapes
//! against a per-sample reading of the same samples with no cache and no histogram summing.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::view::key_types::{EdgeKey, ServiceKey, WorkloadPairKey};
use meshtap_remotewrite::encoded_series::LabelInterner;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{Sample, SeriesId, SeriesLabels};

/// Values keyed by the keys' values (comparable across interners).
#[derive(Debug, Default, PartialEq)]
struct Plain {
    counters: BTreeMap<Counter, f64>,
    histograms: BTreeMap<Histogram, Buckets>,
    gauges: BTreeMap<Gauge, f64>,
}

impl Plain {
    fn of(values: &Values) -> Plain {
        Plain {
            counters: values
                .counters
                .iter()
                .map(|(k, v)| ((**k).clone(), *v))
                .collect(),
            histograms: (values.histograms.iter())
                .map(|(k, v)| ((**k).clone(), v.clone()))
                .collect(),
            gauges: values
                .gauges
                .iter()
                .map(|(k, v)| ((**k).clone(), *v))
                .collect(),
        }
    }
}

/// `samples` read alone (a fresh cache and interners), keyed by value.
fn read(samples: &[impl SampleLabels]) -> Plain {
    let values = Values::read(
        samples,
        &mut ViewKeys::default(),
        &mut LabelCache::default(),
    );
    Plain::of(&values)
}

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
    let values = read(&[
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
    let values = read(&[
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
    let values = read(&samples);
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

/// The view's reading of one sample on its own, from the key rules alone: no label-set cache,
/// no histogram summed aside, no bound parsed once (the oracle of the cached read).
fn read_plainly(samples: &[ExportSample]) -> Plain {
    let mut plain = Plain::default();
    for sample in samples.iter().filter(|s| !s.value.is_nan()) {
        let (name, value) = (sample.name(), sample.value);
        let le = || sample.le().and_then(|le| le.parse::<f64>().ok());
        let mut add = |counter: Counter| *plain.counters.entry(counter).or_default() += value;
        match name {
            REQUESTS => {
                let (edge, is_error) = request_edge(sample);
                if is_error {
                    add(Counter::Requests(edge.clone(), true));
                }
                add(Counter::Requests(edge, false));
            }
            DURATION_BUCKET | CONVERGENCE_BUCKET => {
                let histogram = match name {
                    DURATION_BUCKET => Histogram::RequestDuration(service_key(sample)),
                    _ => Histogram::Convergence,
                };
                if let Some(le) = le() {
                    add_bucket(plain.histograms.entry(histogram).or_default(), le, value);
                }
            }
            "up" => {
                let label = |n: &str| sample.label(n).unwrap_or_default().to_owned();
                plain
                    .gauges
                    .insert(Gauge::Up(label("job"), label("instance")), value);
            }
            "pilot_xds" => *plain.gauges.entry(Gauge::ConnectedProxies).or_default() += value,
            _ => match TcpField::of_family(name) {
                Some(field) => add(tcp_counter(sample, field)),
                None if base_name(name) == "pilot_xds_pushes" => {
                    add(Counter::Pushes(sample.label("type").unwrap().into()))
                }
                None if CONTROL_PLANE_FAULTS.contains(&base_name(name))
                    || (name.starts_with("pilot_xds_") && name.ends_with("_reject")) =>
                {
                    add(Counter::ControlPlaneFault(base_name(name).into()))
                }
                None => {}
            },
        }
    }
    plain
}

/// A sidecar-and-istiod body for scrape `round`: requests of several services, reporters and
/// codes (a NaN among them), their duration histograms, sidecar and ztunnel TCP, istiod's
/// families and an unrelated one. `details` is gone in round 2 and `ratings` answers 500s
/// from round 1 on (new label sets).
fn mesh_body(round: u64) -> String {
    let mut requests = String::from("# TYPE istio_requests_total counter\n");
    let mut durations = String::from("# TYPE istio_request_duration_milliseconds histogram\n");
    let mut codes = vec![("200", 10), ("503", 2), ("404", 3)];
    for (i, service) in ["reviews", "ratings", "details"].into_iter().enumerate() {
        if round == 2 && service == "details" {
            continue;
        }
        if round >= 1 && service == "ratings" {
            codes.push(("500", 1));
        }
        for (code, per_round) in &codes {
            for (reporter, source) in [("destination", "productpage-v1"), ("source", "gateway")] {
                let labels = format!(
                    "destination_service=\"{service}.shop.svc.cluster.local\",reporter=\"{reporter}\",response_code=\"{code}\",source_workload=\"{source}\",source_workload_namespace=\"shop\""
                );
                let n = per_round * (round + 1) * (i as u64 + 1);
                requests.push_str(&format!("istio_requests_total{{{labels}}} {n}\n"));
                for (b, le) in ["10", "100", "+Inf"].into_iter().enumerate() {
                    let count = n * (b as u64 + 1);
                    durations.push_str(&format!(
                        "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {count}\n"
                    ));
                }
                durations.push_str(&format!(
                    "istio_request_duration_milliseconds_sum{{{labels}}} {n}.5\n\
                     istio_request_duration_milliseconds_count{{{labels}}} {}\n",
                    3 * n
                ));
            }
        }
        codes.truncate(3);
    }
    requests.push_str(
        "istio_requests_total{destination_service=\"reviews.shop.svc.cluster.local\",reporter=\"destination\",response_code=\"502\",source_workload=\"productpage-v1\",source_workload_namespace=\"shop\"} NaN\n",
    );
    let tcp = "istio_tcp_sent_bytes_total{destination_service=\"db.shop.svc.cluster.local\",reporter=\"destination\",source_workload=\"reviews-v1\"}";
    let ztunnel = "istio_tcp_sent_bytes_total{destination_workload=\"db-v1\",destination_workload_namespace=\"shop\",destination_zone=\"z1\",reporter=\"destination\",source_workload=\"ratings-v1\",source_workload_namespace=\"shop\"}";
    let istiod = "pilot_xds_pushes_total{type=\"cds\"} 4\npilot_xds_pushes_total{type=\"eds\"} 9\n\
        pilot_xds_cds_reject 1\npilot_xds_write_timeout_total 2\npilot_xds 12\n\
        pilot_proxy_convergence_time_bucket{le=\"0.1\"} 3\npilot_proxy_convergence_time_bucket{le=\"+Inf\"} 5\n";
    format!(
        "{requests}{durations}{tcp} {}\n{ztunnel} {}\n{istiod}envoy_server_uptime {round}\n",
        100 * (round + 1),
        7 * (round + 1)
    )
}

/// The body's samples as the scrape stage queues them: the target's labels added, all sorted
/// and interned by one interner kept across scrapes (so a label set keeps its identity from one
/// scrape to the next, as in the scrape's series cache).
fn encoded_samples(body: &str, interner: &mut LabelInterner, scrape_ms: i64) -> Vec<ExportSample> {
    let parser = meshtap_textformat::Parser::for_content_type(body.as_bytes(), None);
    let mut samples = Vec::new();
    for event in parser {
        let Ok(meshtap_textformat::Event::Sample(sample)) = event else {
            continue;
        };
        let mut labels: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
            .collect();
        labels.extend(
            [
                ("__name__", sample.name),
                ("instance", "10.1.2.3:15020"),
                ("job", "mesh"),
                ("namespace", "shop"),
                ("pod", "reviews-v1-abc"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
        labels.sort();
        let series = interner.series(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        samples.push(ExportSample {
            series: ExportSeries::Encoded(Arc::new(series)),
            value: sample.value,
            timestamp_ms: scrape_ms,
        });
    }
    samples
}

/// Scrapes of one target, read with the target's cache kept between them (as the view does),
/// give exactly what reading each sample on its own gives; the cache holds the label sets of
/// the last scrape only.
#[test]
fn cached_reads_of_repeated_scrapes_equal_a_plain_reading() {
    let mut interner = LabelInterner::default();
    let (mut keys, mut labels) = (ViewKeys::default(), LabelCache::default());
    for round in 0..4 {
        let body = mesh_body(round.min(2));
        let samples = encoded_samples(&body, &mut interner, 1 + round as i64);
        let cached = Plain::of(&Values::read(&samples, &mut keys, &mut labels));
        let plain = read_plainly(&samples);
        assert_eq!(cached, plain, "round {round}");
        assert!(plain.counters.len() >= 14 && plain.histograms.len() >= 5);
        let services = if round < 2 { 3 } else { 2 };
        let codes = 3 * services + usize::from(round >= 1);
        // Per code and reporter a request and a bucket label set, two TCP sets.
        assert_eq!(labels.len(), 2 * 2 * codes + 2, "round {round}");
    }
}
