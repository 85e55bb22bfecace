//! An endpoint's `write_relabel_configs`: the series it is sent, rewritten or left out.
//!
//! As in Prometheus (`storage/remote/queue_manager.go`, `StoreSeries`: `processExternalLabels`
//! then `relabel.ProcessBuilder`; "Write relabeling is applied after external labels" in its
//! configuration docs), the rules see a series' labels with the endpoint's `external_labels`
//! already added (a series' own label of the same name wins), so their result is the label set
//! sent, external labels included: an endpoint with rules queues it without adding external
//! labels again. Every sample of a series (stale markers too) gets the same result: a dropped
//! series is never queued, a changed one is queued with its new labels. A series left without
//! `__name__` is dropped like one a rule drops (remote-write requires the name).
//!
//! Results are kept per distinct input series (a scraped series by the identity of its shared
//! [`EncodedSeries`], which a target keeps from scrape to scrape; a reported one by its
//! [`SeriesId`]), so unchanged series are relabeled once; the rewritten scraped series are
//! interned here. The cache is bounded: past [`MAX_CACHED`] entries, those of scraped series no
//! target holds any more leave, then, if still full, all.
//!
//! Owns the rewrite and its cache; it must not queue, encode nor count anything but what it
//! returns.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::floor::relabel::{relabel, Labels, RelabelConfig};
use meshtap_remotewrite::encoded_series::{EncodedSeries, LabelInterner};
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{SeriesId, SeriesLabels, Text};

/// Most input series whose result is kept, per series form.
pub const MAX_CACHED: usize = 200_000;

/// A scraped series, by the address of its shared allocation (held, so never reused).
struct ByAddress(Arc<EncodedSeries>);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByAddress {}

impl Hash for ByAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(Arc::as_ptr(&self.0) as usize);
    }
}

/// Results so far (`None`: dropped) and the labels of the rewritten scraped series.
#[derive(Default)]
struct Rewritten {
    reported: HashMap<SeriesId, Option<SeriesId>>,
    scraped: HashMap<ByAddress, Option<Arc<EncodedSeries>>>,
    interner: LabelInterner,
}

impl Rewritten {
    /// Makes room for one more entry (see the module doc).
    fn make_room(&mut self) {
        if self.reported.len() >= MAX_CACHED {
            self.reported.clear();
        }
        if self.scraped.len() >= MAX_CACHED {
            self.scraped
                .retain(|input, _| Arc::strong_count(&input.0) > 1);
            if self.scraped.len() >= MAX_CACHED / 2 {
                self.scraped.clear();
            }
            self.interner.prune();
        }
    }
}

/// One endpoint's rules, its external labels and the results cache.
pub struct WriteRelabel {
    rules: Vec<RelabelConfig>,
    /// Sorted by name, empty values left out.
    external_labels: Vec<(String, String)>,
    rewritten: Mutex<Rewritten>,
}

impl WriteRelabel {
    /// The rewrite of an endpoint with `rules`; `None` when there are none (nothing to do).
    pub fn new(
        rules: &[RelabelConfig],
        external_labels: &[(String, String)],
    ) -> Option<WriteRelabel> {
        if rules.is_empty() {
            return None;
        }
        Some(WriteRelabel {
            rules: rules.to_vec(),
            external_labels: external_labels.to_vec(),
            rewritten: Mutex::new(Rewritten::default()),
        })
    }

    /// Rewrites the samples' series, leaving out those of dropped series; returns how many
    /// were left out.
    pub fn apply(&self, samples: &mut Vec<ExportSample>) -> u64 {
        let before = samples.len();
        let mut rewritten = self.rewritten.lock().expect("write relabel lock");
        samples.retain_mut(|sample| match self.series(&mut rewritten, &sample.series) {
            Some(series) => {
                sample.series = series;
                true
            }
            None => false,
        });
        (before - samples.len()) as u64
    }

    /// The series `series` becomes, `None` when dropped.
    fn series(&self, rewritten: &mut Rewritten, series: &ExportSeries) -> Option<ExportSeries> {
        match series {
            ExportSeries::Labels(id) => {
                if let Some(known) = rewritten.reported.get(&**id) {
                    return known.clone().map(ExportSeries::reported);
                }
                let result = self.reported(id);
                rewritten.make_room();
                rewritten.reported.insert((**id).clone(), result.clone());
                result.map(ExportSeries::reported)
            }
            ExportSeries::Encoded(input) => {
                let key = ByAddress(input.clone());
                if let Some(known) = rewritten.scraped.get(&key) {
                    return known.clone().map(ExportSeries::Encoded);
                }
                rewritten.make_room();
                let result = self
                    .relabeled(scraped_labels(input, &self.external_labels))
                    .map(|labels| Arc::new(encoded(&mut rewritten.interner, &labels)));
                rewritten.scraped.insert(key, result.clone());
                result.map(ExportSeries::Encoded)
            }
        }
    }

    fn reported(&self, id: &SeriesId) -> Option<SeriesId> {
        let mut labels = Labels::new();
        id.visit_labels(&self.external_labels, |n, v| {
            labels.push((n.to_owned(), v.to_owned()))
        });
        self.relabeled(labels).map(|labels| series_id(&labels))
    }

    /// The rules' result, sorted by name; `None` when dropped or left without `__name__`.
    fn relabeled(&self, mut labels: Labels) -> Option<Labels> {
        if !relabel(&self.rules, &mut labels) {
            return None;
        }
        labels.retain(|(_, v)| !v.is_empty());
        labels.sort_unstable();
        labels
            .iter()
            .any(|(n, _)| n == "__name__")
            .then_some(labels)
    }
}

/// A scraped series' labels with the external labels it lacks.
fn scraped_labels(series: &EncodedSeries, external: &[(String, String)]) -> Labels {
    let mut labels: Labels = series
        .labels()
        .map(|l| (l.name().to_owned(), l.value().to_owned()))
        .collect();
    for (name, value) in external {
        if series.get(name).is_none() {
            labels.push((name.clone(), value.clone()));
        }
    }
    labels
}

/// A reported series of sorted `labels` (`__name__` among them).
fn series_id(labels: &Labels) -> SeriesId {
    let mut name: Text = Text::from("");
    let mut pairs = Vec::with_capacity(labels.len());
    for (n, v) in labels {
        if n == "__name__" {
            name = Text::from(v.as_str());
        } else {
            pairs.push((Text::from(n.as_str()), Text::from(v.as_str())));
        }
    }
    SeriesId {
        name,
        labels: Arc::new(SeriesLabels::from_sorted(pairs)),
        le: None,
    }
}

fn encoded(interner: &mut LabelInterner, labels: &Labels) -> EncodedSeries {
    interner.series(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_remotewrite::series::{is_stale_marker, stale_nan};

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        let rules: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        rules.iter().for_each(|r| r.check().unwrap());
        rules
    }

    fn external() -> Vec<(String, String)> {
        vec![("cluster".into(), "c1".into())]
    }

    fn reported(name: &str, labels: &[(&str, &str)]) -> ExportSeries {
        let pairs = labels.iter().map(|(n, v)| (Text::from(*n), Text::from(*v)));
        ExportSeries::reported(SeriesId {
            name: name.into(),
            labels: Arc::new(SeriesLabels::from_sorted(pairs.collect())),
            le: None,
        })
    }

    fn scraped(interner: &mut LabelInterner, labels: &[(&str, &str)]) -> ExportSeries {
        ExportSeries::Encoded(Arc::new(interner.series(labels.iter().copied())))
    }

    fn sample(series: &ExportSeries, value: f64) -> ExportSample {
        ExportSample {
            series: series.clone(),
            value,
            timestamp_ms: 1,
        }
    }

    /// The labels of a queued sample, sorted, as sent.
    fn sent(sample: &ExportSample) -> Vec<(String, String)> {
        let mut labels = Vec::new();
        match &sample.series {
            ExportSeries::Labels(id) => {
                id.visit_labels(&[], |n, v| labels.push((n.to_owned(), v.to_owned())))
            }
            ExportSeries::Encoded(s) => {
                for l in s.labels() {
                    labels.push((l.name().to_owned(), l.value().to_owned()));
                }
            }
        }
        labels
    }

    fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn no_rules_is_no_rewrite() {
        assert!(WriteRelabel::new(&[], &external()).is_none());
    }

    #[test]
    fn drop_and_replace_on_both_series_forms_with_external_labels_seen() {
        let write = WriteRelabel::new(
            &rules(
                r#"
- {source_labels: [__name__], regex: 'envoy_.*', action: drop}
- {source_labels: [cluster, app], separator: '/', target_label: origin}
"#,
            ),
            &external(),
        )
        .unwrap();
        let mut interner = LabelInterner::default();
        let mut samples = vec![
            sample(&reported("envoy_x", &[("app", "a")]), 1.0),
            sample(&reported("istio_requests_total", &[("app", "a")]), 2.0),
            sample(&scraped(&mut interner, &[("__name__", "envoy_y")]), 3.0),
            sample(
                &scraped(
                    &mut interner,
                    &[("__name__", "up"), ("app", "b"), ("cluster", "own")],
                ),
                4.0,
            ),
        ];
        assert_eq!(write.apply(&mut samples), 2);
        let kept: Vec<_> = samples.iter().map(|s| (s.value, sent(s))).collect();
        assert_eq!(
            kept,
            vec![
                (
                    2.0,
                    pairs(&[
                        ("__name__", "istio_requests_total"),
                        ("app", "a"),
                        ("cluster", "c1"),
                        ("origin", "c1/a")
                    ])
                ),
                (
                    4.0,
                    pairs(&[
                        ("__name__", "up"),
                        ("app", "b"),
                        ("cluster", "own"),
                        ("origin", "own/b")
                    ])
                ),
            ],
            "external labels are added before the rules; a series' own label wins"
        );
    }

    #[test]
    fn keep_and_labeldrop_and_stale_markers_follow_their_series() {
        let write = WriteRelabel::new(
            &rules(
                r#"
- {source_labels: [__name__], regex: 'istio_.*|up', action: keep}
- {regex: 'pod|cluster', action: labeldrop}
"#,
            ),
            &external(),
        )
        .unwrap();
        let mut interner = LabelInterner::default();
        let kept = scraped(&mut interner, &[("__name__", "up"), ("pod", "p1")]);
        let gone = scraped(
            &mut interner,
            &[("__name__", "go_goroutines"), ("pod", "p1")],
        );
        let report = reported("istio_build", &[("pod", "p2"), ("v", "1")]);
        let mut samples = vec![
            sample(&kept, 1.0),
            sample(&gone, 1.0),
            sample(&report, 1.0),
            sample(&kept, stale_nan()),
            sample(&gone, stale_nan()),
            sample(&report, stale_nan()),
        ];
        assert_eq!(write.apply(&mut samples), 2);
        let got: Vec<_> = samples
            .iter()
            .map(|s| (is_stale_marker(s.value), sent(s)))
            .collect();
        let up = pairs(&[("__name__", "up")]);
        let build = pairs(&[("__name__", "istio_build"), ("v", "1")]);
        assert_eq!(
            got,
            vec![
                (false, up.clone()),
                (false, build.clone()),
                (true, up),
                (true, build)
            ]
        );
    }

    #[test]
    fn results_are_cached_per_input_series() {
        let write = WriteRelabel::new(&rules("- {target_label: x, replacement: y}"), &[]).unwrap();
        let mut interner = LabelInterner::default();
        let series = scraped(&mut interner, &[("__name__", "up")]);
        let mut first = vec![sample(&series, 1.0)];
        let mut second = vec![sample(&series, 2.0)];
        write.apply(&mut first);
        write.apply(&mut second);
        let (ExportSeries::Encoded(a), ExportSeries::Encoded(b)) =
            (&first[0].series, &second[0].series)
        else {
            panic!("scraped series stay encoded");
        };
        assert!(Arc::ptr_eq(a, b), "the same input series is rewritten once");
        assert_eq!(sent(&first[0]), pairs(&[("__name__", "up"), ("x", "y")]));
    }

    #[test]
    fn a_series_left_without_a_name_is_dropped() {
        let write =
            WriteRelabel::new(&rules("- {regex: __name__, action: labeldrop}"), &[]).unwrap();
        let mut samples = vec![sample(&reported("up", &[("a", "b")]), 1.0)];
        assert_eq!(write.apply(&mut samples), 1);
        assert!(samples.is_empty());
    }
}
