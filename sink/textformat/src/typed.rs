//! The family-aware reader: samples with their family, type and role, metadata absorbed, and
//! `le`/`quantile` label values normalised so that `1`, `1.0` and `1e0` name one series.
//!
//! Owns the combination of [`Parser`] and [`Families`] and the label normalisation. It must
//! not build series identities or decide what to export (the sink does).

use std::borrow::Cow;

use crate::event::{Event, MetricKind, Sample};
use crate::family::{Families, SeriesRole};
use crate::number::canonical_float;
use crate::parser::Parser;
use crate::skip::{ParseStats, SkippedLine};

/// A sample with its family.
#[derive(Clone, Copy, Debug)]
pub struct TypedSample<'a> {
    pub sample: Sample<'a>,
    pub family: &'a str,
    pub kind: MetricKind,
    pub role: SeriesRole,
}

impl<'a> TypedSample<'a> {
    /// The labels with values unescaped, and the bucket's `le` or the summary's `quantile`
    /// in canonical form ([`canonical_float`]). Borrows unless a value had to change.
    pub fn normalized_labels(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + '_ {
        let bound = match self.role {
            SeriesRole::Bucket { le } => Some(("le", le)),
            SeriesRole::Quantile { quantile } => Some(("quantile", quantile)),
            _ => None,
        };
        self.sample.labels.iter().map(move |label| match bound {
            Some((bound_name, bound)) if label.name == bound_name => {
                let canonical = canonical_float(bound);
                let raw = label.value.raw();
                let value = if canonical.as_str() == raw {
                    Cow::Borrowed(raw)
                } else {
                    Cow::Owned(canonical.as_str().to_owned())
                };
                (label.name, value)
            }
            _ => (label.name, label.value.unescaped()),
        })
    }
}

/// Iterator over the samples of a body with their families. Metadata lines update
/// [`TypedSamples::families`]; `# EOF` is skipped over (counted in the stats). An `Err` is a
/// skipped line, including samples whose bucket or quantile bound is missing or not a number;
/// it never ends the iteration.
#[derive(Debug)]
pub struct TypedSamples<'a> {
    parser: Parser<'a>,
    families: Families<'a>,
}

impl<'a> TypedSamples<'a> {
    pub fn new(parser: Parser<'a>) -> Self {
        TypedSamples {
            parser,
            families: Families::new(),
        }
    }

    /// The metadata seen so far (for remote-write metadata: type, help, unit per family).
    pub fn families(&self) -> &Families<'a> {
        &self.families
    }

    /// The counters so far; `samples` counts only samples yielded here.
    pub fn stats(&self) -> &ParseStats {
        self.parser.stats()
    }
}

impl<'a> TypedSamples<'a> {
    /// The next physical line (see [`Parser::next_line`]).
    pub fn next_line(&mut self) -> Option<&'a [u8]> {
        self.parser.next_line()
    }

    /// Counts a sample line read with [`crate::quick_sample`] (see
    /// [`Parser::count_quick_sample`]).
    pub fn count_quick_sample(&mut self) {
        self.parser.count_quick_sample();
    }

    /// Reads a line from [`TypedSamples::next_line`]: `None` for a line that is not a sample
    /// (metadata is absorbed), else the typed sample or why the line was skipped.
    pub fn read_line(&mut self, bytes: &'a [u8]) -> Option<Result<TypedSample<'a>, SkippedLine>> {
        let event = match self.parser.read_line(bytes)? {
            Ok(event) => event,
            Err(skipped) => return Some(Err(skipped)),
        };
        let Event::Sample(sample) = event else {
            self.families.observe(&event);
            return None;
        };
        Some(match self.families.classify(&sample) {
            Ok(family) => Ok(TypedSample {
                sample,
                family: family.family,
                kind: family.kind,
                role: family.role,
            }),
            Err(reason) => {
                let line_no = self.parser.line_no();
                let stats = self.parser.stats_mut();
                stats.samples -= 1;
                stats.record_skip(reason);
                Err(SkippedLine { line_no, reason })
            }
        })
    }
}

impl<'a> Iterator for TypedSamples<'a> {
    type Item = Result<TypedSample<'a>, SkippedLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let bytes = self.next_line()?;
            if let Some(item) = self.read_line(bytes) {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::skip::SkipReason;

    fn normalized(body: &str) -> Vec<Vec<(String, String, bool)>> {
        TypedSamples::new(Parser::new(body.as_bytes(), Format::PrometheusText))
            .filter_map(Result::ok)
            .map(|typed| {
                typed
                    .normalized_labels()
                    .map(|(name, value)| {
                        let borrowed = matches!(value, Cow::Borrowed(_));
                        (name.to_owned(), value.into_owned(), borrowed)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn le_and_quantile_spellings_are_normalised() {
        let got = normalized(
            "# TYPE h histogram\nh_bucket{a=\"1.0\",le=\"1.0\"} 1\nh_bucket{le=\"1e+06\"} 1\nh_bucket{le=\"+Inf\"} 1\n\
             # TYPE s summary\ns{quantile=\"0.50\"} 1\n# TYPE g gauge\ng{le=\"1.0\"} 1\n",
        );
        let label = |n: &str, v: &str, b: bool| (n.to_owned(), v.to_owned(), b);
        assert_eq!(
            got,
            vec![
                vec![label("a", "1.0", true), label("le", "1", false)],
                vec![label("le", "1000000", false)],
                vec![label("le", "+Inf", true)],
                vec![label("quantile", "0.5", false)],
                vec![label("le", "1.0", true)],
            ]
        );
    }

    #[test]
    fn family_errors_are_skipped_and_counted() {
        let body = "# TYPE h histogram\nh_bucket 1\nh_sum 2\n";
        let mut reader = TypedSamples::new(Parser::new(body.as_bytes(), Format::PrometheusText));
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(
            items[0].as_ref().unwrap_err(),
            &SkippedLine {
                line_no: 2,
                reason: SkipReason::BucketWithoutLe
            }
        );
        assert_eq!(items[1].as_ref().unwrap().role, SeriesRole::Sum);
        assert_eq!(reader.stats().samples, 1);
        assert_eq!(reader.stats().bad_lines, 1);
        assert_eq!(
            reader.families().get("h").unwrap().kind,
            MetricKind::Histogram
        );
    }
}
