//! Families: the metadata seen so far (`# TYPE`, `# HELP`, `# UNIT`) and which family, type
//! and role each sample belongs to (`_bucket`/`le`, `_sum`, `_count`, `_created`,
//! `quantile`, OpenMetrics `_total`, `_info`, `_gsum`, `_gcount`).
//!
//! A sample belongs to the family of the latest metadata line when its name is that family's
//! name plus a suffix the family's type allows (the usual, allocation- and lookup-free
//! case); otherwise to any family seen earlier by the same rule (families may repeat in a
//! concatenated body; the latest metadata for a name wins); otherwise it is its own family of
//! unknown type, as text 0.0.4 says for series without `# TYPE`.
//!
//! Owns that mapping and the bound checks (`le`, `quantile` must be numbers). It must not
//! parse lines, nor check bucket monotonicity or `+Inf` presence (consumers of whole
//! histograms do that).

use std::collections::HashMap;

use crate::event::{Event, MetricKind, Sample};
use crate::labels::EscapedStr;
use crate::number::parse_value;
use crate::skip::SkipReason;

/// What a sample is within its family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeriesRole {
    /// The family's value: a gauge, an unknown, a counter's `_total` (or bare name in text
    /// 0.0.4), an info's `_info`, a stateset.
    Value,
    /// `_bucket` with its parsed `le`.
    Bucket { le: f64 },
    /// `_sum` (`_gsum` for gauge histograms).
    Sum,
    /// `_count` (`_gcount` for gauge histograms).
    Count,
    /// OpenMetrics `_created`.
    Created,
    /// A summary quantile with its parsed `quantile`.
    Quantile { quantile: f64 },
}

/// Metadata of one family.
#[derive(Clone, Copy, Debug)]
pub struct FamilyMeta<'a> {
    pub kind: MetricKind,
    pub help: Option<EscapedStr<'a>>,
    pub unit: Option<&'a str>,
}

/// The family a sample belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleFamily<'a> {
    pub family: &'a str,
    pub kind: MetricKind,
    pub role: SeriesRole,
}

/// A role before its bound is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoleKind {
    Value,
    Bucket,
    Sum,
    Count,
    Created,
    Quantile,
}

/// Suffixes tried when a sample name is not a family name itself.
const SUFFIXES: [&str; 8] = [
    "_bucket", "_sum", "_count", "_created", "_total", "_info", "_gsum", "_gcount",
];

/// The role a sample called `<family><suffix>` has in a family of type `kind`, if any.
fn role_for(kind: MetricKind, suffix: &str) -> Option<RoleKind> {
    use MetricKind as K;
    Some(match (kind, suffix) {
        (K::Counter, "" | "_total") => RoleKind::Value,
        (K::Gauge | K::Unknown | K::StateSet, "") => RoleKind::Value,
        (K::Info, "" | "_info") => RoleKind::Value,
        (K::Histogram | K::GaugeHistogram, "_bucket") => RoleKind::Bucket,
        (K::Histogram | K::Summary, "_sum") | (K::GaugeHistogram, "_gsum") => RoleKind::Sum,
        (K::Histogram | K::Summary, "_count") | (K::GaugeHistogram, "_gcount") => RoleKind::Count,
        (K::Counter | K::Histogram | K::Summary, "_created") => RoleKind::Created,
        (K::Summary, "") => RoleKind::Quantile,
        _ => return None,
    })
}

/// The metadata seen so far in a body, and the sample-to-family mapping (module docs).
#[derive(Debug, Default)]
pub struct Families<'a> {
    by_name: HashMap<&'a str, FamilyMeta<'a>>,
    current: Option<(&'a str, MetricKind)>,
}

impl<'a> Families<'a> {
    pub fn new() -> Self {
        Families::default()
    }

    /// Records a `Help`, `Type` or `Unit` event; other events are ignored.
    pub fn observe(&mut self, event: &Event<'a>) {
        let family = match *event {
            Event::Help { family, .. }
            | Event::Type { family, .. }
            | Event::Unit { family, .. } => family,
            Event::Sample(_) | Event::Eof => return,
        };
        let meta = self.by_name.entry(family).or_insert(FamilyMeta {
            kind: MetricKind::Unknown,
            help: None,
            unit: None,
        });
        match *event {
            Event::Help { text, .. } => meta.help = Some(text),
            Event::Type { kind, .. } => meta.kind = kind,
            Event::Unit { unit, .. } => meta.unit = Some(unit),
            Event::Sample(_) | Event::Eof => {}
        }
        self.current = Some((family, meta.kind));
    }

    /// The latest metadata of a family.
    pub fn get(&self, family: &str) -> Option<&FamilyMeta<'a>> {
        self.by_name.get(family)
    }

    /// Every family with metadata, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &FamilyMeta<'a>)> + '_ {
        self.by_name.iter().map(|(name, meta)| (*name, meta))
    }

    /// The family, type and role of a sample. Fails when a bucket or quantile has no usable
    /// bound.
    pub fn classify(&self, sample: &Sample<'a>) -> Result<SampleFamily<'a>, SkipReason> {
        let (family, kind, role) = self.resolve(sample.name);
        let role = match role {
            RoleKind::Value => SeriesRole::Value,
            RoleKind::Sum => SeriesRole::Sum,
            RoleKind::Count => SeriesRole::Count,
            RoleKind::Created => SeriesRole::Created,
            RoleKind::Bucket => {
                let le = sample.labels.get("le").ok_or(SkipReason::BucketWithoutLe)?;
                let le = parse_value(le.raw()).ok_or(SkipReason::InvalidBucketBound)?;
                SeriesRole::Bucket { le }
            }
            RoleKind::Quantile => {
                let quantile = sample
                    .labels
                    .get("quantile")
                    .ok_or(SkipReason::SummaryWithoutQuantile)?;
                let quantile = parse_value(quantile.raw()).ok_or(SkipReason::InvalidQuantile)?;
                SeriesRole::Quantile { quantile }
            }
        };
        Ok(SampleFamily { family, kind, role })
    }

    fn resolve(&self, name: &'a str) -> (&'a str, MetricKind, RoleKind) {
        if let Some((family, kind)) = self.current {
            if let Some(role) = name.strip_prefix(family).and_then(|s| role_for(kind, s)) {
                return (family, kind, role);
            }
        }
        if let Some((family, meta)) = self.by_name.get_key_value(name) {
            if let Some(role) = role_for(meta.kind, "") {
                return (family, meta.kind, role);
            }
        }
        for suffix in SUFFIXES {
            let Some(stem) = name.strip_suffix(suffix) else {
                continue;
            };
            if let Some((family, meta)) = self.by_name.get_key_value(stem) {
                if let Some(role) = role_for(meta.kind, suffix) {
                    return (family, meta.kind, role);
                }
            }
        }
        (name, MetricKind::Unknown, RoleKind::Value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::parser::Parser;

    /// Classifies every sample of `body`, as `(name, family, kind, role)`.
    fn classify_all(
        body: &str,
    ) -> Vec<Result<(String, String, MetricKind, SeriesRole), SkipReason>> {
        let mut families = Families::new();
        let mut out = Vec::new();
        for event in Parser::new(body.as_bytes(), Format::OpenMetrics) {
            let event = event.expect("test bodies are valid");
            if let Event::Sample(sample) = &event {
                out.push(
                    families
                        .classify(sample)
                        .map(|f| (sample.name.to_owned(), f.family.to_owned(), f.kind, f.role)),
                );
            } else {
                families.observe(&event);
            }
        }
        out
    }

    fn ok(
        name: &str,
        family: &str,
        kind: MetricKind,
        role: SeriesRole,
    ) -> Result<(String, String, MetricKind, SeriesRole), SkipReason> {
        Ok((name.to_owned(), family.to_owned(), kind, role))
    }

    #[test]
    fn histogram_parts() {
        let got = classify_all(
            "# TYPE d histogram\nd_bucket{le=\"0.5\"} 1\nd_bucket{le=\"+Inf\"} 2\nd_sum 3\nd_count 2\nd_created 1\n",
        );
        let h = MetricKind::Histogram;
        assert_eq!(
            got,
            vec![
                ok("d_bucket", "d", h, SeriesRole::Bucket { le: 0.5 }),
                ok("d_bucket", "d", h, SeriesRole::Bucket { le: f64::INFINITY }),
                ok("d_sum", "d", h, SeriesRole::Sum),
                ok("d_count", "d", h, SeriesRole::Count),
                ok("d_created", "d", h, SeriesRole::Created),
            ]
        );
    }

    #[test]
    fn summary_counter_and_untyped() {
        let got = classify_all(
            "# TYPE s summary\ns{quantile=\"0.99\"} 1\ns_sum 1\n# TYPE c counter\nc_total 4\nc_created 1\nplain 5\n",
        );
        assert_eq!(
            got,
            vec![
                ok(
                    "s",
                    "s",
                    MetricKind::Summary,
                    SeriesRole::Quantile { quantile: 0.99 }
                ),
                ok("s_sum", "s", MetricKind::Summary, SeriesRole::Sum),
                ok("c_total", "c", MetricKind::Counter, SeriesRole::Value),
                ok("c_created", "c", MetricKind::Counter, SeriesRole::Created),
                ok("plain", "plain", MetricKind::Unknown, SeriesRole::Value),
            ]
        );
    }

    #[test]
    fn text_counter_named_with_total_and_gauge_named_like_a_suffix() {
        let got = classify_all(
            "# TYPE x_total counter\nx_total 1\n# TYPE y_count gauge\ny_count 2\ny_count_sum 3\n",
        );
        assert_eq!(
            got,
            vec![
                ok("x_total", "x_total", MetricKind::Counter, SeriesRole::Value),
                ok("y_count", "y_count", MetricKind::Gauge, SeriesRole::Value),
                ok(
                    "y_count_sum",
                    "y_count_sum",
                    MetricKind::Unknown,
                    SeriesRole::Value
                ),
            ]
        );
    }

    #[test]
    fn earlier_family_is_found_after_another_one() {
        let got = classify_all("# TYPE h histogram\n# TYPE g gauge\ng 1\nh_count 2\ng 3\n");
        assert_eq!(
            got[1],
            ok("h_count", "h", MetricKind::Histogram, SeriesRole::Count)
        );
        assert_eq!(got[2], ok("g", "g", MetricKind::Gauge, SeriesRole::Value));
    }

    #[test]
    fn later_type_for_a_repeated_family_wins() {
        let got = classify_all("# TYPE r gauge\nr 1\n# TYPE r counter\nr 2\n");
        assert_eq!(got[1], ok("r", "r", MetricKind::Counter, SeriesRole::Value));
    }

    #[test]
    fn gauge_histogram_and_info() {
        let got = classify_all(
            "# TYPE q gaugehistogram\nq_bucket{le=\"1\"} 1\nq_gsum 1\nq_gcount 1\n# TYPE b info\nb_info{v=\"1\"} 1\n",
        );
        let gh = MetricKind::GaugeHistogram;
        assert_eq!(got[1], ok("q_gsum", "q", gh, SeriesRole::Sum));
        assert_eq!(got[2], ok("q_gcount", "q", gh, SeriesRole::Count));
        assert_eq!(
            got[3],
            ok("b_info", "b", MetricKind::Info, SeriesRole::Value)
        );
    }

    #[test]
    fn missing_or_bad_bounds_are_errors() {
        let got = classify_all(
            "# TYPE d histogram\nd_bucket 1\nd_bucket{le=\"x\"} 1\n# TYPE s summary\ns 1\ns{quantile=\"high\"} 1\n",
        );
        assert_eq!(
            got,
            vec![
                Err(SkipReason::BucketWithoutLe),
                Err(SkipReason::InvalidBucketBound),
                Err(SkipReason::SummaryWithoutQuantile),
                Err(SkipReason::InvalidQuantile),
            ]
        );
    }

    #[test]
    fn metadata_is_kept_per_family() {
        let mut families = Families::new();
        for event in Parser::new(
            b"# HELP t Time.\n# TYPE t gauge\n# UNIT t seconds\n",
            Format::OpenMetrics,
        ) {
            families.observe(&event.unwrap());
        }
        let meta = families.get("t").unwrap();
        assert_eq!(meta.kind, MetricKind::Gauge);
        assert_eq!(meta.help.unwrap(), "Time.");
        assert_eq!(meta.unit, Some("seconds"));
        assert_eq!(families.iter().count(), 1);
    }
}
