//! Why a line was skipped, and the counters of one parse.
//!
//! Owns [`SkipReason`], [`SkippedLine`] and [`ParseStats`]. It must not decide *whether* a line
//! is bad (the line and family parsers do) nor log anything (the caller logs what it wants).

use thiserror::Error;

/// Why one line of an exposition was skipped. Skipping is never fatal: parsing goes on with
/// the next line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum SkipReason {
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("metric name is missing or has a character outside [a-zA-Z0-9_:]")]
    InvalidMetricName,
    #[error("quoted metric or label name contains a backslash escape, which is not supported")]
    EscapedQuotedName,
    #[error("label name is missing or has a character outside [a-zA-Z0-9_]")]
    InvalidLabelName,
    #[error("label name is not followed by `=\"`")]
    MissingLabelValue,
    #[error("label value has no closing quote")]
    UnterminatedLabelValue,
    #[error("label pair is not followed by `,` or `}}`")]
    MalformedLabelList,
    #[error("label set has no closing `}}`")]
    UnclosedLabelSet,
    #[error("sample has no value")]
    MissingValue,
    #[error("sample value is not a number")]
    InvalidValue,
    #[error("timestamp is not a valid number of milliseconds or seconds")]
    InvalidTimestamp,
    #[error("unexpected text after the sample")]
    TrailingText,
    #[error("exemplar after `#` is malformed")]
    InvalidExemplar,
    #[error("`# HELP` line has no metric name")]
    InvalidHelpLine,
    #[error("`# TYPE` line is not `# TYPE <name> <type>`")]
    InvalidTypeLine,
    #[error("`# TYPE` names an unknown metric type")]
    UnknownMetricType,
    #[error("`# UNIT` line is not `# UNIT <name> <unit>`")]
    InvalidUnitLine,
    #[error("histogram bucket has no `le` label")]
    BucketWithoutLe,
    #[error("histogram bucket `le` is not a number")]
    InvalidBucketBound,
    #[error("summary quantile sample has no `quantile` label")]
    SummaryWithoutQuantile,
    #[error("summary `quantile` is not a number")]
    InvalidQuantile,
}

impl SkipReason {
    /// Every reason, in declaration order (the index used by [`ReasonCounts`]).
    pub const ALL: [SkipReason; 21] = [
        SkipReason::InvalidUtf8,
        SkipReason::InvalidMetricName,
        SkipReason::EscapedQuotedName,
        SkipReason::InvalidLabelName,
        SkipReason::MissingLabelValue,
        SkipReason::UnterminatedLabelValue,
        SkipReason::MalformedLabelList,
        SkipReason::UnclosedLabelSet,
        SkipReason::MissingValue,
        SkipReason::InvalidValue,
        SkipReason::InvalidTimestamp,
        SkipReason::TrailingText,
        SkipReason::InvalidExemplar,
        SkipReason::InvalidHelpLine,
        SkipReason::InvalidTypeLine,
        SkipReason::UnknownMetricType,
        SkipReason::InvalidUnitLine,
        SkipReason::BucketWithoutLe,
        SkipReason::InvalidBucketBound,
        SkipReason::SummaryWithoutQuantile,
        SkipReason::InvalidQuantile,
    ];

    /// A short stable name, suitable as a metric label value (`invalid_value`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::InvalidMetricName => "invalid_metric_name",
            SkipReason::EscapedQuotedName => "escaped_quoted_name",
            SkipReason::InvalidLabelName => "invalid_label_name",
            SkipReason::MissingLabelValue => "missing_label_value",
            SkipReason::UnterminatedLabelValue => "unterminated_label_value",
            SkipReason::MalformedLabelList => "malformed_label_list",
            SkipReason::UnclosedLabelSet => "unclosed_label_set",
            SkipReason::MissingValue => "missing_value",
            SkipReason::InvalidValue => "invalid_value",
            SkipReason::InvalidTimestamp => "invalid_timestamp",
            SkipReason::TrailingText => "trailing_text",
            SkipReason::InvalidExemplar => "invalid_exemplar",
            SkipReason::InvalidHelpLine => "invalid_help_line",
            SkipReason::InvalidTypeLine => "invalid_type_line",
            SkipReason::UnknownMetricType => "unknown_metric_type",
            SkipReason::InvalidUnitLine => "invalid_unit_line",
            SkipReason::BucketWithoutLe => "bucket_without_le",
            SkipReason::InvalidBucketBound => "invalid_bucket_bound",
            SkipReason::SummaryWithoutQuantile => "summary_without_quantile",
            SkipReason::InvalidQuantile => "invalid_quantile",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One skipped line: its 1-based number in the body and why it was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("line {line_no} skipped: {reason}")]
pub struct SkippedLine {
    pub line_no: u64,
    pub reason: SkipReason,
}

/// Skipped-line counts per [`SkipReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    counts: [u64; SkipReason::ALL.len()],
}

impl ReasonCounts {
    /// How many lines were skipped for `reason`.
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.counts[reason.index()]
    }

    /// The reasons with a non-zero count, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|&reason| (reason, self.get(reason)))
            .filter(|&(_, count)| count > 0)
    }

    fn add(&mut self, reason: SkipReason) {
        self.counts[reason.index()] += 1;
    }
}

/// Counters of one parse. Every physical line is counted once in `lines`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Physical lines read (blank ones included).
    pub lines: u64,
    /// Samples yielded.
    pub samples: u64,
    /// `#` lines that are neither HELP, TYPE, UNIT nor EOF.
    pub comments: u64,
    /// `# EOF` lines seen.
    pub eofs: u64,
    /// Non-blank lines read after the first `# EOF` (a concatenated body went on).
    pub lines_after_eof: u64,
    /// Samples whose label values were read with the Envoy raw-value heuristic.
    pub raw_label_samples: u64,
    /// Lines skipped, all reasons together.
    pub bad_lines: u64,
    /// Lines skipped, per reason.
    pub by_reason: ReasonCounts,
}

impl ParseStats {
    pub(crate) fn record_skip(&mut self, reason: SkipReason) {
        self.bad_lines += 1;
        self.by_reason.add(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_discriminant() {
        for (position, reason) in SkipReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), position, "{reason:?}");
        }
    }

    #[test]
    fn counts_are_kept_per_reason() {
        let mut stats = ParseStats::default();
        stats.record_skip(SkipReason::InvalidValue);
        stats.record_skip(SkipReason::InvalidValue);
        stats.record_skip(SkipReason::InvalidQuantile);
        assert_eq!(stats.bad_lines, 3);
        assert_eq!(stats.by_reason.get(SkipReason::InvalidValue), 2);
        assert_eq!(
            stats.by_reason.iter().collect::<Vec<_>>(),
            vec![
                (SkipReason::InvalidValue, 2),
                (SkipReason::InvalidQuantile, 1)
            ]
        );
    }

    #[test]
    fn reason_names_are_distinct() {
        let mut names: Vec<_> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SkipReason::ALL.len());
    }
}
