//! One scrape body into samples: each scraped series gets the target's labels (a scraped label
//! that clashes with a target label is kept as `exported_<name>`, as Prometheus does without
//! `honor_labels`; with it the scraped label stays and the target's is left out,
//! `honor_labels`), then the job's `metric_relabel_configs`; empty values are dropped. Also the
//! per-target report series `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`.
//!
//! A line whose series text the target's [`SeriesCache`] knows is read with the quick split
//! (value and timestamp only) and gets the cached series; other lines are parsed in full,
//! converted and cached. Owns the scraped series shape; it must not do I/O, and keeps state
//! between scrapes only in the cache it is given.

use std::sync::Arc;

use meshtap_textformat::{
    quick_sample, Families, LabelStyle, MetricKind, Parser, TypedSample, TypedSamples,
};

use super::relabel::{relabel, Labels};
use super::series_cache::{Outcome, SeriesCache, TextEntry};
use super::source_merge::is_filter_family;
use super::target::Target;
use super::text_key::TextKeys;
use crate::export::remote_write::families::FamilyMeta;
use meshtap_remotewrite::encoded_series::{EncodedSeries, LabelInterner};
use meshtap_remotewrite::proto::MetricType;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::stale_nan;

/// What one body turned into.
#[derive(Debug, Default)]
pub struct ScrapedSamples {
    pub samples: Vec<ExportSample>,
    /// Samples in the body (before merge filtering and relabeling).
    pub scraped: u64,
    /// Lines the parser skipped, and samples whose relabeled labels are unusable.
    pub bad_lines: u64,
    /// Samples whose series already appeared earlier in the same body (kept: the first).
    pub duplicates: u64,
    /// The body's families with metadata lines, for remote-write metadata (filled by a full
    /// parse only: the quick pass over known lines does not read them).
    pub families: Vec<(String, FamilyMeta)>,
}

/// The series of a parsed sample for `target`: its slot in `cache`, or why it has none.
fn convert_series(typed: &TypedSample<'_>, target: &Target, cache: &mut SeriesCache) -> Outcome {
    let mut labels: Labels = Vec::with_capacity(typed.sample.labels.len() + 6);
    let target_has = |name: &str| target.labels.iter().any(|(n, _)| &**n == name);
    for (name, value) in typed.normalized_labels() {
        let clashes = name == "__name__" || (!target.honor_labels && target_has(name));
        let name = if clashes {
            format!("exported_{name}")
        } else {
            name.to_owned()
        };
        labels.push((name, value.into_owned()));
    }
    labels.push(("__name__".to_owned(), typed.sample.name.to_owned()));
    let scraped = labels.len();
    for (name, value) in target.labels.iter() {
        if target.honor_labels && labels[..scraped].iter().any(|(n, _)| n == &**name) {
            continue;
        }
        labels.push((name.to_string(), value.to_string()));
    }
    if !relabel(&target.metric_relabel_configs, &mut labels) {
        return Outcome::Dropped;
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let repeated = labels.windows(2).any(|w| w[0].0 == w[1].0);
    if repeated || !labels.iter().any(|(n, _)| n == "__name__") {
        return Outcome::Invalid;
    }
    let series = cache
        .interner()
        .series(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    cache.series(series)
}

impl ScrapedSamples {
    /// Adds the sample of a cached text (a current entry) unless merge filtering drops it.
    pub(super) fn add(
        &mut self,
        cache: &mut SeriesCache,
        entry: TextEntry,
        drop_filter_families: bool,
        value: f64,
        timestamp_ms: i64,
    ) {
        if drop_filter_families && entry.filter_family {
            return;
        }
        match entry.outcome {
            Outcome::Dropped => {}
            Outcome::Invalid => self.bad_lines += 1,
            Outcome::Series { slot, .. } => match cache.emit(slot) {
                Some(series) => self.samples.push(ExportSample {
                    series: ExportSeries::Encoded(series),
                    value,
                    timestamp_ms,
                }),
                None => self.duplicates += 1,
            },
        }
    }
}

/// Parses `body` and converts its samples for `target` through its `cache` (a new scrape of
/// the cache is begun; the caller finishes it); samples without their own timestamp get
/// `scrape_ms`. With `drop_filter_families`, Istio's standard families are left out.
pub fn body_to_samples(
    body: &[u8],
    content_type: Option<&str>,
    target: &Target,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &mut SeriesCache,
) -> ScrapedSamples {
    let mut out = ScrapedSamples::default();
    cache.begin();
    convert_lines(
        body,
        content_type,
        target,
        scrape_ms,
        drop_filter_families,
        cache,
        &mut out,
    );
    out
}

/// [`body_to_samples`] of the lines of `body` within a scrape of `cache` already begun,
/// adding to `out`.
pub(super) fn convert_lines(
    body: &[u8],
    content_type: Option<&str>,
    target: &Target,
    scrape_ms: i64,
    drop_filter_families: bool,
    cache: &mut SeriesCache,
    out: &mut ScrapedSamples,
) {
    let parser = Parser::for_content_type(body, content_type);
    let format = parser.format();
    let mut reader = TypedSamples::new(parser);
    let mut keys = TextKeys::default();
    while let Some(line) = reader.next_line() {
        let quick = quick_sample(line, format);
        if let Some(quick) = quick {
            let known = cache
                .text(keys.key(quick.series_text))
                .filter(|entry| entry.quick && cache.is_current(entry.outcome));
            if let Some(entry) = known {
                reader.count_quick_sample();
                out.scraped += 1;
                let timestamp_ms = quick.timestamp_ms.unwrap_or(scrape_ms);
                out.add(
                    cache,
                    entry,
                    drop_filter_families,
                    quick.value,
                    timestamp_ms,
                );
                continue;
            }
        }
        let typed = match reader.read_line(line) {
            None => continue,
            Some(Ok(typed)) => typed,
            Some(Err(skipped)) => {
                tracing::debug!(url = %target.url, %skipped, "skipped a bad exposition line");
                continue;
            }
        };
        out.scraped += 1;
        let filter_family = is_filter_family(typed.family);
        if drop_filter_families && filter_family {
            continue;
        }
        let series_text = typed.sample.series_text.as_bytes();
        let key = keys.key(series_text);
        let entry = match cache.text(key) {
            Some(entry) if cache.is_current(entry.outcome) => entry,
            _ => {
                let outcome = convert_series(&typed, target, cache);
                let quick = typed.sample.labels.style() == LabelStyle::Escaped
                    && quick.is_some_and(|q| q.series_text == series_text);
                cache.insert_text(key, outcome, quick, filter_family);
                cache.text(key).expect("just inserted")
            }
        };
        let timestamp_ms = typed.sample.timestamp_ms.unwrap_or(scrape_ms);
        out.add(
            cache,
            entry,
            drop_filter_families,
            typed.sample.value,
            timestamp_ms,
        );
    }
    out.bad_lines += reader.stats().bad_lines;
    out.families = family_metadata(reader.families(), drop_filter_families);
}

/// The families of a parsed body that had `# TYPE`, `# HELP` or `# UNIT` lines (Istio's
/// standard families left out when the filter reports them).
fn family_metadata(
    families: &Families<'_>,
    drop_filter_families: bool,
) -> Vec<(String, FamilyMeta)> {
    families
        .iter()
        .filter(|(name, _)| !(drop_filter_families && is_filter_family(name)))
        .map(|(name, meta)| {
            let kind = match meta.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram => MetricType::Histogram,
                MetricKind::GaugeHistogram => MetricType::Gaugehistogram,
                MetricKind::Summary => MetricType::Summary,
                MetricKind::Info => MetricType::Info,
                MetricKind::StateSet => MetricType::Stateset,
                MetricKind::Unknown => MetricType::Unknown,
            };
            let meta = FamilyMeta {
                kind,
                help: meta
                    .help
                    .map(|h| h.unescaped().into_owned())
                    .unwrap_or_default(),
                unit: meta.unit.unwrap_or_default().to_owned(),
            };
            (name.to_owned(), meta)
        })
        .collect()
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

/// A target's report series (target labels only), made once per target.
#[derive(Debug)]
pub struct ReportSeries([Arc<EncodedSeries>; 5]);

impl ReportSeries {
    pub fn new(target: &Target, interner: &mut LabelInterner) -> ReportSeries {
        let series = |name: &str, interner: &mut LabelInterner| {
            let mut labels: Vec<(&str, &str)> =
                target.labels.iter().map(|(n, v)| (&**n, &**v)).collect();
            labels.push(("__name__", name));
            labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
            Arc::new(interner.series(labels))
        };
        ReportSeries([
            series("up", interner),
            series("scrape_duration_seconds", interner),
            series("scrape_samples_scraped", interner),
            series("scrape_samples_post_metric_relabeling", interner),
            series("scrape_series_added", interner),
        ])
    }

    /// The report samples of one scrape at `scrape_ms`.
    pub fn samples(&self, report: ScrapeReport, scrape_ms: i64) -> Vec<ExportSample> {
        let values = [
            if report.up { 1.0 } else { 0.0 },
            report.duration_seconds,
            report.samples_scraped as f64,
            report.samples_post_relabeling as f64,
            report.series_added as f64,
        ];
        self.0
            .iter()
            .zip(values)
            .map(|(series, value)| ExportSample {
                series: ExportSeries::Encoded(series.clone()),
                value,
                timestamp_ms: scrape_ms,
            })
            .collect()
    }

    /// Stale markers at `marker_ms` for all five (the target was removed).
    pub fn stale_markers(&self, marker_ms: i64) -> Vec<ExportSample> {
        self.0
            .iter()
            .map(|series| ExportSample {
                series: ExportSeries::Encoded(series.clone()),
                value: stale_nan(),
                timestamp_ms: marker_ms,
            })
            .collect()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::scrape::config::ScrapeConfig;
    use crate::scrape::target::static_targets;

    pub(in crate::scrape) fn target(yaml: &str) -> Target {
        let section: ScrapeConfig = serde_yaml::from_str(yaml).unwrap();
        section.check().unwrap();
        static_targets(&section, &section.jobs[0]).remove(0)
    }

    fn encoded(sample: &ExportSample) -> &EncodedSeries {
        match &sample.series {
            ExportSeries::Encoded(series) => series,
            ExportSeries::Labels(_) => panic!("scraped samples carry encoded series"),
        }
    }

    pub(in crate::scrape) fn text(sample: &ExportSample) -> String {
        let mut out = String::new();
        for label in encoded(sample).labels() {
            out.push_str(&format!("{}={},", label.name(), label.value()));
        }
        format!("{out} {}@{}", sample.value, sample.timestamp_ms)
    }

    pub(in crate::scrape) const BODY: &str = "\
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
        let mut cache = SeriesCache::default();
        let out = body_to_samples(BODY.as_bytes(), None, &t, 1000, false, &mut cache);
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
        let mut cache = SeriesCache::default();
        let out = body_to_samples(BODY.as_bytes(), None, &t, 1000, true, &mut cache);
        let names: Vec<(String, Option<String>)> = out
            .samples
            .iter()
            .map(|s| {
                let series = encoded(s);
                (
                    series.get("__name__").unwrap().to_owned(),
                    series.get("family").map(str::to_owned),
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
    }

    /// The second scrape of a body reads its known lines through the cache and gives the same
    /// samples; series that vanish or are merged away get stale markers.
    #[test]
    fn cached_scrapes_match_the_first_and_mark_what_vanished() {
        let t = target(
            "jobs: [{name: pods, static_configs: [{targets: ['10.1.2.3:15020'], labels: {namespace: default, pod: reviews-1}}]}]",
        );
        let mut cache = SeriesCache::default();
        let first = body_to_samples(BODY.as_bytes(), None, &t, 1000, false, &mut cache);
        assert!(cache.finish(1000).is_empty());
        assert_eq!(cache.added(), 9);
        let second = body_to_samples(BODY.as_bytes(), None, &t, 2000, false, &mut cache);
        assert_eq!(cache.added(), 0);
        assert_eq!(
            (second.scraped, second.duplicates, second.bad_lines),
            (10, 1, 0)
        );
        let again: Vec<String> = second.samples.iter().map(text).collect();
        let expected: Vec<String> = first
            .samples
            .iter()
            .map(|s| text(s).replace("@1000", "@2000"))
            .collect();
        assert_eq!(again, expected);
        assert!(cache.finish(2000).is_empty());

        // `le="1"` names the same series as `le="1.0"`; istio_* are merged away; one line
        // is gone.
        let changed = BODY
            .replace("le=\"1.0\"} 2", "le=\"1\"} 3")
            .replace("envoy_server_live{} 1\n", "");
        let third = body_to_samples(changed.as_bytes(), None, &t, 3000, true, &mut cache);
        assert_eq!(third.duplicates, 0);
        assert_eq!(cache.added(), 0);
        assert!(third
            .samples
            .iter()
            .map(text)
            .any(|s| s.contains("le=1,") && s.ends_with(" 3@3000")));
        let stale: Vec<String> = cache
            .finish(3000)
            .iter()
            .map(|m| encoded(m).get("__name__").unwrap().to_owned())
            .collect();
        assert_eq!(stale, ["istio_requests_total", "envoy_server_live"]);
    }
}
