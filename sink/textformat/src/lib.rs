//! meshtap's own streaming parser for the Prometheus text format 0.0.4 and OpenMetrics text,
//! tolerant of what Istio's `:15020/stats/prometheus` and istiod's `:15014/metrics` serve.
//!
//! Two layers, both zero-copy over a complete body `&[u8]`:
//! - [`Parser`]: an iterator of [`Event`]s (`Help`, `Type`, `Unit`, `Sample`, `Eof`), one per
//!   meaningful line. Bad lines come out as `Err(`[`SkippedLine`]`)` and never stop the
//!   iteration; everything is counted in [`ParseStats`]. Samples borrow their name and labels
//!   from the body; label values are unescaped only on demand ([`EscapedStr`]).
//! - [`TypedSamples`]: the same stream with each sample mapped to its family, metric type
//!   and [`SeriesRole`] (bucket, sum, count, created, quantile), and `le`/`quantile`
//!   normalised by [`canonical_float`].
//!
//! ```
//! use meshtap_textformat::{MetricKind, Parser, SeriesRole, TypedSamples};
//!
//! let body = b"# TYPE istio_request_bytes histogram\n\
//!     istio_request_bytes_bucket{reporter=\"source\",le=\"1.0\"} 3\n\
//!     istio_request_bytes_sum{reporter=\"source\"} 2.5\n\
//!     envoy_server_live{} 1\n\
//!     not a sample\n";
//! let mut reader = TypedSamples::new(Parser::for_content_type(body, Some("text/plain; version=0.0.4")));
//! let bucket = reader.next().unwrap().unwrap();
//! assert_eq!((bucket.family, bucket.kind), ("istio_request_bytes", MetricKind::Histogram));
//! assert_eq!(bucket.role, SeriesRole::Bucket { le: 1.0 });
//! let labels: Vec<_> = bucket.normalized_labels().collect();
//! assert_eq!(labels[1], ("le", "1".into()));
//! assert_eq!(reader.next().unwrap().unwrap().role, SeriesRole::Sum);
//! let live = reader.next().unwrap().unwrap();
//! assert_eq!((live.sample.name, live.sample.labels.len()), ("envoy_server_live", 0));
//! assert!(reader.next().unwrap().is_err()); // skipped and counted, never fatal
//! assert!(reader.next().is_none());
//! assert_eq!(reader.stats().bad_lines, 1);
//! ```
//!
//! Callers that cache per series text read lines one by one ([`Parser::next_line`]) and
//! split known sample lines with [`quick_sample`] (no label lexing), handing the others to
//! [`TypedSamples::read_line`].
//!
//! Tolerance rules, for the concatenated 15020 body (agent text, then Envoy text, then the
//! app's exposition, under the app's Content-Type):
//! - Both formats are accepted on every line; the Content-Type ([`Format`]) only picks the
//!   timestamp unit (ms for text, seconds for OpenMetrics; an integer timestamp >= 1e11 is
//!   ms in either, since no OpenMetrics body dates from after the year 5138).
//! - `# EOF` yields [`Event::Eof`] and parsing continues: what follows is another part of the
//!   concatenation. Repeated family names are fine; the latest metadata wins.
//! - Envoy writes label values without escaping: a line that fails with escaped values is
//!   read again with raw values (the rule is on [`LabelStyle::EnvoyRaw`]), counted
//!   in [`ParseStats::raw_label_samples`].
//! - Envoy's `name{} value`, blanks and tabs anywhere between tokens, `\r\n` line ends, a
//!   missing final newline, `NaN`/`±Inf` in any case, exemplars, UTF-8 quoted names.
//!
//! Not accepted (the line is skipped with a reason): hexadecimal float values, escapes inside
//! quoted names. Duplicate label names are passed through for the consumer to detect.

mod event;
mod family;
mod format;
mod labels;
mod lex;
mod line;
mod number;
mod parser;
mod quick;
mod skip;
mod typed;

pub use event::{Event, Exemplar, MetricKind, Sample};
pub use family::{Families, FamilyMeta, SampleFamily, SeriesRole};
pub use format::Format;
pub use labels::{EscapedStr, Label, LabelIter, LabelStyle, Labels};
pub use number::{canonical_float, FloatText};
pub use parser::Parser;
pub use quick::{quick_sample, QuickSample};
pub use skip::{ParseStats, ReasonCounts, SkipReason, SkippedLine};
pub use typed::{TypedSample, TypedSamples};
