//! Conversion of a validated report into samples: family labels (empty values dropped) plus
//! the target labels `namespace`, `pod`, `instance`, `job`; histograms become cumulative
//! `_bucket{le=...}`, `_sum` and `_count`.
//!
//! Owns the exported series shape. It trusts its input was checked by
//! `meshtap_report::validate` and must not do I/O or keep state between reports.

use std::collections::HashMap;
use std::sync::Arc;

use meshtap_report::{MetricFamily, MetricKind, Report, Series};

use meshtap_remotewrite::series::{Sample, SeriesId, SeriesLabels, Text};

/// The port Prometheus scrapes a sidecar's merged metrics on; the `instance` label uses it.
pub const MERGED_METRICS_PORT: u16 = 15020;

/// Names of the target labels; a family label with one of these names is exported as
/// `exported_<name>`, as Prometheus does for scraped labels that clash with target labels.
pub const TARGET_LABELS: [&str; 4] = ["instance", "job", "namespace", "pod"];

/// Formats a bucket bound the way Prometheus and Envoy print `le` (`0.5`, `1`, `1800000`).
pub fn format_le(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        format!("{bound}")
    }
}

/// Where one exported label of a family comes from.
enum Slot {
    /// Index into the series' `label_values`.
    Family(usize, Text),
    /// A target label, the same for every series of the report.
    Target(Text, Text),
}

/// The target labels of one report.
fn target_labels(report: &Report, job: &Text) -> Vec<(Text, Text)> {
    let proxy = report.proxy.as_ref().expect("validated report has a proxy");
    let mut targets: Vec<(Text, Text)> = vec![
        (Arc::from("job"), job.clone()),
        (Arc::from("namespace"), Arc::from(proxy.namespace.as_str())),
        (Arc::from("pod"), Arc::from(proxy.pod.as_str())),
    ];
    if let Some(ip) = proxy.instance_ips.iter().find(|ip| !ip.is_empty()) {
        let instance = if ip.contains(':') {
            format!("[{ip}]:{MERGED_METRICS_PORT}")
        } else {
            format!("{ip}:{MERGED_METRICS_PORT}")
        };
        targets.push((Arc::from("instance"), Arc::from(instance)));
    }
    targets
}

/// The family's exported labels in sorted name order.
fn family_slots(family: &MetricFamily, targets: &[(Text, Text)]) -> Vec<(Text, Slot)> {
    let mut slots: Vec<(Text, Slot)> = family
        .label_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let exported: Text = if TARGET_LABELS.contains(&name.as_str()) {
                Arc::from(format!("exported_{name}"))
            } else {
                Arc::from(name.as_str())
            };
            (exported.clone(), Slot::Family(i, exported))
        })
        .collect();
    slots.extend(
        targets
            .iter()
            .map(|(n, v)| (n.clone(), Slot::Target(n.clone(), v.clone()))),
    );
    slots.sort_by(|a, b| a.0.cmp(&b.0));
    slots
}

/// Converts every series of a validated report to samples at `report.timestamp_ms`.
pub fn report_to_samples(report: &Report, job: &Text) -> Vec<Sample> {
    let targets = target_labels(report, job);
    let ts = report.timestamp_ms;
    let mut samples = Vec::with_capacity(sample_count(report));
    // Families with the same label names (Istio's HTTP families) share one label set per
    // distinct label values.
    let mut shared: HashMap<&[String], Arc<SeriesLabels>> = HashMap::new();
    let mut shared_names: Option<&[String]> = None;
    for family in &report.families {
        if shared_names != Some(family.label_names.as_slice()) {
            shared.clear();
            shared_names = Some(&family.label_names);
        }
        let slots = family_slots(family, &targets);
        let kind = MetricKind::try_from(family.kind).unwrap_or(MetricKind::Unspecified);
        let names = FamilyNames::new(family, kind);
        for series in &family.series {
            let labels = shared
                .entry(series.label_values.as_slice())
                .or_insert_with(|| label_set(&slots, &series.label_values))
                .clone();
            names.push_samples(labels, series, ts, &mut samples);
        }
    }
    samples
}

/// The sorted label set of one series' values.
fn label_set(slots: &[(Text, Slot)], values: &[String]) -> Arc<SeriesLabels> {
    let mut pairs = Vec::with_capacity(slots.len());
    for (_, slot) in slots {
        match slot {
            Slot::Family(i, name) => {
                let value = &values[*i];
                if !value.is_empty() {
                    pairs.push((name.clone(), Arc::from(value.as_str())));
                }
            }
            Slot::Target(name, value) => pairs.push((name.clone(), value.clone())),
        }
    }
    Arc::new(SeriesLabels::from_sorted(pairs))
}

/// How many samples a report converts to.
pub fn sample_count(report: &Report) -> usize {
    report
        .families
        .iter()
        .map(|f| {
            let per_series = if f.kind == MetricKind::Histogram as i32 {
                f.bounds.len() + 3
            } else {
                1
            };
            per_series * f.series.len()
        })
        .sum()
}

/// Exported metric names of one family.
enum FamilyNames {
    Plain(Text),
    Histogram {
        bucket: Text,
        sum: Text,
        count: Text,
        les: Vec<Text>,
    },
}

impl FamilyNames {
    fn new(family: &MetricFamily, kind: MetricKind) -> FamilyNames {
        if kind != MetricKind::Histogram {
            return FamilyNames::Plain(Arc::from(family.name.as_str()));
        }
        let les = family
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .map(|b| Arc::from(format_le(b)))
            .collect();
        FamilyNames::Histogram {
            bucket: Arc::from(format!("{}_bucket", family.name)),
            sum: Arc::from(format!("{}_sum", family.name)),
            count: Arc::from(format!("{}_count", family.name)),
            les,
        }
    }

    /// Appends the samples of one series with `labels` at `ts`: its value, or a histogram's
    /// cumulative buckets, sum and count.
    fn push_samples(
        &self,
        labels: Arc<SeriesLabels>,
        series: &Series,
        ts: i64,
        samples: &mut Vec<Sample>,
    ) {
        let sample =
            |name: &Text, labels: Arc<SeriesLabels>, le: Option<Text>, value: f64| Sample {
                series: SeriesId {
                    name: name.clone(),
                    labels,
                    le,
                },
                value,
                timestamp_ms: ts,
            };
        match self {
            FamilyNames::Plain(name) => samples.push(sample(name, labels, None, series.value)),
            FamilyNames::Histogram {
                bucket,
                sum,
                count,
                les,
            } => {
                let mut cumulative: u64 = 0;
                for (le, n) in les.iter().zip(&series.bucket_counts) {
                    cumulative = cumulative.saturating_add(*n);
                    let le = Some(le.clone());
                    samples.push(sample(bucket, labels.clone(), le, cumulative as f64));
                }
                samples.push(sample(sum, labels.clone(), None, series.sum));
                samples.push(sample(count, labels, None, cumulative as f64));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_values_print_like_prometheus() {
        assert_eq!(format_le(0.5), "0.5");
        assert_eq!(format_le(1.0), "1");
        assert_eq!(format_le(1_800_000.0), "1800000");
        assert_eq!(format_le(f64::INFINITY), "+Inf");
    }
}
