//! Checks the parser against real reference data when `<repo>/../shared/reference` exists
//! (Prometheus' own parser test data, real Istio 1.14 sidecar and istiod scrapes); each test
//! passes with a notice when the directory is absent. Nothing from there is copied here.

use std::collections::HashMap;
use std::path::PathBuf;

use meshtap_textformat::{Format, MetricKind, Parser, SeriesRole, TypedSample, TypedSamples};

fn reference_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no reference data at {}", dir.display());
        None
    }
}

/// Sample lines of a body: lines that are neither blank nor `#` lines.
fn sample_lines(body: &[u8]) -> u64 {
    body.split(|&b| b == b'\n')
        .filter(|line| {
            let trimmed = line.trim_ascii_start();
            !trimmed.is_empty() && trimmed[0] != b'#'
        })
        .count() as u64
}

/// Parses a whole body with the family layer, asserting no line was skipped.
fn parse_clean<'a>(name: &str, body: &'a [u8], format: Format) -> Vec<TypedSample<'a>> {
    let mut reader = TypedSamples::new(Parser::new(body, format));
    let samples: Vec<_> = reader
        .by_ref()
        .map(|item| item.unwrap_or_else(|skipped| panic!("{name}: {skipped}")))
        .collect();
    let stats = reader.stats();
    assert_eq!(stats.bad_lines, 0, "{name}: {stats:?}");
    assert_eq!(stats.samples, sample_lines(body), "{name}");
    assert_eq!(samples.len() as u64, stats.samples, "{name}");
    samples
}

/// For every histogram series, the `+Inf` bucket must equal `_count`, and buckets must be
/// cumulative in `le` order: a strong check that families, roles and labels were read right.
fn check_histograms(name: &str, samples: &[TypedSample<'_>]) -> usize {
    type SeriesKey = (String, Vec<(String, String)>);
    let key = |s: &TypedSample<'_>| -> SeriesKey {
        let labels = s
            .sample
            .labels
            .iter()
            .filter(|l| l.name != "le")
            .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
            .collect();
        (s.family.to_owned(), labels)
    };
    let mut buckets: HashMap<SeriesKey, Vec<(f64, f64)>> = HashMap::new();
    let mut counts: HashMap<SeriesKey, f64> = HashMap::new();
    for s in samples.iter().filter(|s| s.kind == MetricKind::Histogram) {
        match s.role {
            SeriesRole::Bucket { le } => buckets
                .entry(key(s))
                .or_default()
                .push((le, s.sample.value)),
            SeriesRole::Count => {
                counts.insert(key(s), s.sample.value);
            }
            _ => {}
        }
    }
    for (series, bounds) in &buckets {
        assert!(
            bounds
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name}: {series:?}"
        );
        let (last_le, last_value) = *bounds.last().unwrap();
        assert_eq!(last_le, f64::INFINITY, "{name}: {series:?}");
        assert_eq!(Some(&last_value), counts.get(series), "{name}: {series:?}");
    }
    buckets.len()
}

#[test]
fn prometheus_textparse_data_parses_without_bad_lines() {
    let Some(dir) = reference_dir() else { return };
    let dir = dir.join("prometheus-textparse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(&path).unwrap();
        let format = if name.contains(".om.") || name.starts_with("om") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        };
        let samples = parse_clean(&name, &body, format);
        let histograms = check_histograms(&name, &samples);
        eprintln!(
            "{name}: {} samples, {histograms} histogram series",
            samples.len()
        );
        if name == "alltypes.237mfs.prom.txt" {
            let mut reader = TypedSamples::new(Parser::new(&body, format));
            reader.by_ref().for_each(drop);
            assert_eq!(reader.families().iter().count(), 237);
        }
        if format == Format::OpenMetrics {
            let exemplars = samples
                .iter()
                .filter(|s| s.sample.exemplar.is_some())
                .count();
            let expected = body.windows(3).filter(|w| w == b" # ").count();
            assert_eq!(exemplars, expected, "{name}");
        }
    }
}

#[test]
fn istio_sidecar_15020_scrape_parses_without_bad_lines() {
    let Some(dir) = reference_dir() else { return };
    let body = std::fs::read(dir.join("istio-1.14-sidecar-15020.txt")).unwrap();
    let samples = parse_clean("15020", &body, Format::PrometheusText);
    assert!(check_histograms("15020", &samples) > 0);
    let requests: Vec<_> = samples
        .iter()
        .filter(|s| s.family == "istio_requests_total")
        .collect();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.kind, MetricKind::Counter);
        assert_eq!(r.sample.labels.get("reporter").unwrap(), "destination");
    }
    let envoy_empty_braces = samples
        .iter()
        .filter(|s| s.sample.name.starts_with("envoy_") && s.sample.labels.is_empty())
        .count();
    assert!(envoy_empty_braces > 0);
    assert!(samples
        .iter()
        .all(|s| s.kind != MetricKind::Unknown || s.family.starts_with("envoy_")));
}

#[test]
fn istio_istiod_15014_scrape_parses_without_bad_lines() {
    let Some(dir) = reference_dir() else { return };
    let body = std::fs::read(dir.join("istio-1.14-istiod-15014.txt")).unwrap();
    let samples = parse_clean("15014", &body, Format::PrometheusText);
    check_histograms("15014", &samples);
    assert!(samples.iter().any(|s| s.family.starts_with("pilot_")));
}

#[test]
fn merged_body_under_an_openmetrics_header_parses_without_bad_lines() {
    let Some(dir) = reference_dir() else { return };
    let sidecar = std::fs::read(dir.join("istio-1.14-sidecar-15020.txt")).unwrap();
    let app = std::fs::read(dir.join("prometheus-textparse/alltypes.5mfs.om.txt")).unwrap();
    let merged = [sidecar.as_slice(), app.as_slice()].concat();
    let samples = parse_clean("15020+om", &merged, Format::OpenMetrics);
    check_histograms("15020+om", &samples);
    assert_eq!(
        samples.len() as u64,
        sample_lines(&sidecar) + sample_lines(&app)
    );
}
