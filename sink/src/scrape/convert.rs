//! One scrape body into samples: each scraped series gets the target's labels (a scraped label
//! that clashes with a target label is kept as `exported_<name>`, as Prometheus does without
//! `honor_labels`), then the job's `metric_relabel_configs`; empty values are dropped. Also the
//! per-target report series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`.
//!
//! Owns the scraped series shape. It must not do I/O or keep state between scrapes.

use std::collections::HashSet;
use std::sync::Arc;

use meshtap_textformat::{Parser, TypedSamples};

use super::relabel::{relabel, Labels};
use super::target::Target;
use crate::series::{LabelSet, Sample, SeriesId, Text};

/// What one body turned into.
#[derive(Debug, Default)]
pub struct ScrapedSamples {
    pub samples: Vec<Sample>,
    /// Samples in the body (before merge filtering and relabeling).
    pub scraped: u64,
    /// Lines the parser skipped.
    pub bad_lines: u64,
    /// Samples whose series already appeared earlier in the same body (kept: the first).
    pub duplicates: u64,
}

/// Whether a scraped family is one of Istio's standard metrics, which the filter produces
/// (`istio_requests_total`, `istio_request_duration_milliseconds_*`, `istio_tcp_*`, ...), as
/// opposed to istio-agent's own `istio_agent_*` and `istio_build`.
pub fn is_filter_family(name: &str) -> bool {
    name.starts_with("istio_") && !name.starts_with("istio_agent_") && name != "istio_build"
}

/// A label set from relabeled labels: sorted, empty values dropped; `None` without a name or
/// with a repeated label name.
fn series_of(mut labels: Labels) -> Option<SeriesId> {
    labels.retain(|(_, v)| !v.is_empty());
    let at = labels.iter().position(|(n, _)| n == "__name__")?;
    let (_, name) = labels.swap_remove(at);
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if labels.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let pairs = labels
        .into_iter()
        .map(|(n, v)| (Text::from(n), Text::from(v)))
        .collect();
    Some(SeriesId {
        name: Text::from(name),
        labels: Arc::new(LabelSet::from_sorted(pairs)),
        le: None,
    })
}

/// Parses `body` and converts its samples for `target`; samples without their own timestamp
/// get `scrape_ms`. Families for which `drop_family` is true are left out.
pub fn body_to_samples(
    body: &[u8],
    content_type: Option<&str>,
    target: &Target,
    scrape_ms: i64,
    drop_family: &dyn Fn(&str) -> bool,
) -> ScrapedSamples {
    let mut reader = TypedSamples::new(Parser::for_content_type(body, content_type));
    let mut out = ScrapedSamples::default();
    let mut seen: HashSet<SeriesId> = HashSet::new();
    for item in reader.by_ref() {
        let typed = match item {
            Ok(typed) => typed,
            Err(skipped) => {
                tracing::debug!(url = %target.url, %skipped, "skipped a bad exposition line");
                continue;
            }
        };
        out.scraped += 1;
        if drop_family(typed.family) {
            continue;
        }
        let mut labels: Labels = Vec::with_capacity(typed.sample.labels.len() + 6);
        for (name, value) in typed.normalized_labels() {
            let clashes = name == "__name__" || target.labels.iter().any(|(n, _)| &**n == name);
            let name = if clashes {
                format!("exported_{name}")
            } else {
                name.to_owned()
            };
            labels.push((name, value.into_owned()));
        }
        labels.push(("__name__".to_owned(), typed.sample.name.to_owned()));
        labels.extend(
            target
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        if !relabel(&target.metric_relabel_configs, &mut labels) {
            continue;
        }
        let Some(series) = series_of(labels) else {
            out.bad_lines += 1;
            continue;
        };
        if !seen.insert(series.clone()) {
            out.duplicates += 1;
            continue;
        }
        out.samples.push(Sample {
            series,
            value: typed.sample.value,
            timestamp_ms: typed.sample.timestamp_ms.unwrap_or(scrape_ms),
        });
    }
    out.bad_lines += reader.stats().bad_lines;
    out
}

/// The facts of one scrape that become report series.
#[derive(Clone, Copy, Debug)]
pub struct ScrapeReport {
    pub up: bool,
    pub duration_seconds: f64,
    pub samples_scraped: u64,
    pub samples_post_relabeling: u64,
    pub series_added: u64,
}

/// The target's report series at `scrape_ms`.
pub fn report_samples(target: &Target, report: ScrapeReport, scrape_ms: i64) -> Vec<Sample> {
    let labels = Arc::new(LabelSet::from_sorted(target.labels.clone()));
    [
        ("up", if report.up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", report.duration_seconds),
        ("scrape_samples_scraped", report.samples_scraped as f64),
        (
            "scrape_samples_post_metric_relabeling",
            report.samples_post_relabeling as f64,
        ),
        ("scrape_series_added", report.series_added as f64),
    ]
    .into_iter()
    .map(|(name, value)| Sample {
        series: SeriesId {
            name: Text::from(name),
            labels: labels.clone(),
            le: None,
        },
        value,
        timestamp_ms: scrape_ms,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::ScrapeConfig;
    use crate::scrape::target::static_targets;

    fn target(yaml: &str) -> Target {
        let section: ScrapeConfig = serde_yaml::from_str(yaml).unwrap();
        section.check().unwrap();
        static_targets(&section, &section.jobs[0]).remove(0)
    }

    fn text(sample: &Sample) -> String {
        let mut out = String::new();
        sample.series.visit_labels(&[], |n, v| {
            out.push_str(&format!("{n}={v},"));
        });
        format!("{out} {}@{}", sample.value, sample.timestamp_ms)
    }

    const BODY: &str = "\
# TYPE envoy_cluster_upstream_rq counter
envoy_cluster_upstream_rq{response_code=\"200\",cluster_name=\"xds-grpc\",instance=\"envoy\"} 7
# TYPE istio_requests_total counter
istio_requests_total{response_code=\"200\",source_version=\"\"} 3
# TYPE envoy_cluster_upstream_rq_time histogram
envoy_cluster_upstream_rq_time_bucket{le=\"0.5\"} 1
envoy_cluster_upstream_rq_time_bucket{le=\"1.0\"} 2
envoy_cluster_upstream_rq_time_bucket{le=\"+Inf\"} 2
envoy_cluster_upstream_rq_time_sum 1.2
envoy_cluster_upstream_rq_time_count 2
envoy_server_live{} 1
envoy_server_live{} 1
app_jobs_done_total 5 1700000000000
";

    #[test]
    fn target_labels_win_and_buckets_are_canonical() {
        let t = target(
            "jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020'], labels: {namespace: default, pod: reviews-1}}]}]",
        );
        let out = body_to_samples(BODY.as_bytes(), None, &t, 1000, &|_| false);
        assert_eq!(out.scraped, 10);
        assert_eq!(out.duplicates, 1);
        assert_eq!(out.bad_lines, 0);
        let lines: Vec<String> = out.samples.iter().map(text).collect();
        let t_labels = "instance=10.1.2.3:15020,job=pods,namespace=default,pod=reviews-1,";
        assert_eq!(
            lines[0],
            format!("__name__=envoy_cluster_upstream_rq,cluster_name=xds-grpc,exported_instance=envoy,{t_labels}response_code=200, 7@1000")
        );
        assert_eq!(
            lines[1],
            format!("__name__=istio_requests_total,{t_labels}response_code=200, 3@1000"),
            "empty source_version dropped"
        );
        assert_eq!(
            lines[3],
            "__name__=envoy_cluster_upstream_rq_time_bucket,instance=10.1.2.3:15020,job=pods,le=1,namespace=default,pod=reviews-1, 2@1000"
        );
        assert_eq!(
            lines.last().unwrap(),
            &format!("__name__=app_jobs_done_total,{t_labels} 5@1700000000000")
        );
    }

    #[test]
    fn merge_filter_and_metric_relabeling_apply() {
        let t = target(
            r#"
jobs:
  - name: pods
    static_configs: [{targets: ['10.1.2.3:15020']}]
    metric_relabel_configs:
      - {source_labels: [__name__], regex: 'envoy_cluster_.*', action: drop}
      - {source_labels: [__name__], target_label: family, regex: '(app)_.*'}
"#,
        );
        let out = body_to_samples(BODY.as_bytes(), None, &t, 1000, &|f| is_filter_family(f));
        let names: Vec<(String, Option<String>)> = out
            .samples
            .iter()
            .map(|s| {
                (
                    s.series.name.to_string(),
                    s.series.labels.get("family").map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("envoy_server_live".to_owned(), None),
                ("app_jobs_done_total".to_owned(), Some("app".to_owned()))
            ]
        );
        assert!(is_filter_family("istio_request_bytes"));
        assert!(!is_filter_family("istio_agent_pilot_xds"));
        assert!(!is_filter_family("istio_build"));
    }
}
