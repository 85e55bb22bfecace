//! One line of an exposition into an [`Event`], a comment, a blank, or a [`SkipReason`].
//!
//! Owns the grammar of a line: `# HELP|TYPE|UNIT|EOF`, other comments, and samples
//! (`name{labels} value [timestamp] [# {exemplar labels} value [timestamp]]`, or the
//! UTF-8 form `{"name", labels}`). A sample line that fails with escaped label values is read
//! once more with Envoy's raw values (see [`crate::labels`]). It must not split lines, count
//! anything or keep state between lines.

use crate::event::{Event, Exemplar, MetricKind, Sample};
use crate::format::Format;
use crate::labels::{read_label_list, EscapedStr, Escaping, LabelStyle, Labels};
use crate::lex::{any_metric_name, quoted_name, skip_blanks, token_end};
use crate::number::{parse_timestamp_ms, parse_value};
use crate::skip::SkipReason;

/// What one line holds.
#[derive(Debug)]
pub(crate) enum Line<'a> {
    Blank,
    Comment,
    Event(Event<'a>),
}

/// Parses one line (without its line break).
pub(crate) fn parse_line(line: &str, format: Format) -> Result<Line<'_>, SkipReason> {
    let bytes = line.as_bytes();
    let start = skip_blanks(bytes, 0);
    match bytes.get(start) {
        None => Ok(Line::Blank),
        Some(b'#') => parse_hash_line(line, start + 1, format),
        Some(_) => match parse_sample(line, start, format, LabelStyle::Escaped) {
            Ok(sample) => Ok(Line::Event(Event::Sample(sample))),
            Err(reason) if line.as_bytes()[start..].contains(&b'{') => {
                parse_sample(line, start, format, LabelStyle::EnvoyRaw)
                    .map(|sample| Line::Event(Event::Sample(sample)))
                    .map_err(|_| reason)
            }
            Err(reason) => Err(reason),
        },
    }
}

/// A `#` line; `pos` is just after the `#`.
fn parse_hash_line(line: &str, pos: usize, format: Format) -> Result<Line<'_>, SkipReason> {
    let bytes = line.as_bytes();
    let keyword_start = skip_blanks(bytes, pos);
    let keyword_end = token_end(bytes, keyword_start);
    let rest = skip_blanks(bytes, keyword_end);
    match &line[keyword_start..keyword_end] {
        "HELP" => parse_help(line, rest, format),
        "TYPE" => parse_type(line, rest),
        "UNIT" => parse_unit(line, rest),
        "EOF" if rest == bytes.len() => Ok(Line::Event(Event::Eof)),
        _ => Ok(Line::Comment),
    }
}

/// The family name after a keyword, and the index after it and its blanks. The name must be
/// followed by a blank or the end of the line.
fn family_name(line: &str, pos: usize) -> Option<(&str, usize)> {
    let bytes = line.as_bytes();
    let (start, end, next) = any_metric_name(bytes, pos).ok()?;
    if next < bytes.len() && !crate::lex::is_blank(bytes[next]) {
        return None;
    }
    Some((&line[start..end], skip_blanks(bytes, next)))
}

/// HELP text escapes `\\` and `\n`; OpenMetrics also escapes `\"`.
fn parse_help(line: &str, pos: usize, format: Format) -> Result<Line<'_>, SkipReason> {
    let (family, text_start) = family_name(line, pos).ok_or(SkipReason::InvalidHelpLine)?;
    let escaping = match format {
        Format::PrometheusText => Escaping::HelpText,
        Format::OpenMetrics => Escaping::LabelValue,
    };
    let text = EscapedStr::new(&line[text_start..], escaping);
    Ok(Line::Event(Event::Help { family, text }))
}

fn parse_type(line: &str, pos: usize) -> Result<Line<'_>, SkipReason> {
    let bytes = line.as_bytes();
    let (family, kind_start) = family_name(line, pos).ok_or(SkipReason::InvalidTypeLine)?;
    let kind_end = token_end(bytes, kind_start);
    if kind_start == kind_end || skip_blanks(bytes, kind_end) != bytes.len() {
        return Err(SkipReason::InvalidTypeLine);
    }
    let kind = MetricKind::from_type_name(&line[kind_start..kind_end])
        .ok_or(SkipReason::UnknownMetricType)?;
    Ok(Line::Event(Event::Type { family, kind }))
}

fn parse_unit(line: &str, pos: usize) -> Result<Line<'_>, SkipReason> {
    let bytes = line.as_bytes();
    let (family, unit_start) = family_name(line, pos).ok_or(SkipReason::InvalidUnitLine)?;
    let unit_end = token_end(bytes, unit_start);
    if skip_blanks(bytes, unit_end) != bytes.len() {
        return Err(SkipReason::InvalidUnitLine);
    }
    let unit = &line[unit_start..unit_end];
    Ok(Line::Event(Event::Unit { family, unit }))
}

/// A sample line starting at `start` (its first non-blank byte).
fn parse_sample(
    line: &str,
    start: usize,
    format: Format,
    style: LabelStyle,
) -> Result<Sample<'_>, SkipReason> {
    let bytes = line.as_bytes();
    let (name, labels, after_labels) = if bytes[start] == b'{' {
        braced_name_and_labels(line, start + 1, style)?
    } else {
        let (name_start, name_end, next) = any_metric_name(bytes, start)?;
        let name = &line[name_start..name_end];
        let brace = skip_blanks(bytes, next);
        if bytes.get(brace) == Some(&b'{') {
            let (labels, close) = read_label_list(&line[brace + 1..], style)?;
            (name, labels, brace + 1 + close + 1)
        } else {
            (name, Labels::empty(), next)
        }
    };
    let value_start = skip_blanks(bytes, after_labels);
    if value_start == bytes.len() {
        return Err(SkipReason::MissingValue);
    }
    if value_start == after_labels {
        // The name or `}` runs straight into more text.
        return Err(if after_labels == start + name.len() {
            SkipReason::InvalidMetricName
        } else {
            SkipReason::TrailingText
        });
    }
    let value_end = token_end(bytes, value_start);
    let value = parse_value(&line[value_start..value_end]).ok_or(SkipReason::InvalidValue)?;
    let (timestamp_ms, exemplar) = timestamp_and_exemplar(line, value_end, format)?;
    Ok(Sample {
        name,
        series_text: &line[start..after_labels],
        labels,
        value,
        timestamp_ms,
        exemplar,
    })
}

/// The `{"name", labels}` form; `pos` is just after the `{`.
fn braced_name_and_labels(
    line: &str,
    pos: usize,
    style: LabelStyle,
) -> Result<(&str, Labels<'_>, usize), SkipReason> {
    let bytes = line.as_bytes();
    let quote = skip_blanks(bytes, pos);
    if bytes.get(quote) != Some(&b'"') {
        return Err(SkipReason::InvalidMetricName);
    }
    let (name_start, name_end, next) = quoted_name(bytes, quote)?;
    let name = &line[name_start..name_end];
    let separator = skip_blanks(bytes, next);
    match bytes.get(separator) {
        Some(b'}') => Ok((name, Labels::empty(), separator + 1)),
        Some(b',') => {
            let list_start = separator + 1;
            let (labels, close) = read_label_list(&line[list_start..], style)?;
            Ok((name, labels, list_start + close + 1))
        }
        Some(_) => Err(SkipReason::MalformedLabelList),
        None => Err(SkipReason::UnclosedLabelSet),
    }
}

/// The optional timestamp and exemplar after a value ending at `pos`.
fn timestamp_and_exemplar(
    line: &str,
    pos: usize,
    format: Format,
) -> Result<(Option<i64>, Option<Exemplar<'_>>), SkipReason> {
    let bytes = line.as_bytes();
    let mut next = skip_blanks(bytes, pos);
    let mut timestamp_ms = None;
    if next < bytes.len() && bytes[next] != b'#' {
        let end = token_end(bytes, next);
        timestamp_ms =
            Some(parse_timestamp_ms(&line[next..end], format).ok_or(SkipReason::InvalidTimestamp)?);
        next = skip_blanks(bytes, end);
    }
    match bytes.get(next) {
        None => Ok((timestamp_ms, None)),
        Some(b'#') => {
            let exemplar =
                parse_exemplar(line, next + 1, format).ok_or(SkipReason::InvalidExemplar)?;
            Ok((timestamp_ms, Some(exemplar)))
        }
        Some(_) => Err(SkipReason::TrailingText),
    }
}

/// `{labels} value [timestamp]`, starting just after the exemplar's `#`.
fn parse_exemplar(line: &str, pos: usize, format: Format) -> Option<Exemplar<'_>> {
    let bytes = line.as_bytes();
    let brace = skip_blanks(bytes, pos);
    if bytes.get(brace) != Some(&b'{') {
        return None;
    }
    let (labels, close) = read_label_list(&line[brace + 1..], LabelStyle::Escaped).ok()?;
    let value_start = skip_blanks(bytes, brace + 1 + close + 1);
    let value_end = token_end(bytes, value_start);
    let value = parse_value(&line[value_start..value_end])?;
    let ts_start = skip_blanks(bytes, value_end);
    let mut timestamp_ms = None;
    if ts_start < bytes.len() {
        let ts_end = token_end(bytes, ts_start);
        timestamp_ms = Some(parse_timestamp_ms(&line[ts_start..ts_end], format)?);
        if skip_blanks(bytes, ts_end) != bytes.len() {
            return None;
        }
    }
    Some(Exemplar {
        labels,
        value,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(line: &str, format: Format) -> Sample<'_> {
        match parse_line(line, format) {
            Ok(Line::Event(Event::Sample(sample))) => sample,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn skipped(line: &str) -> SkipReason {
        match parse_line(line, Format::PrometheusText) {
            Err(reason) => reason,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn label_pairs(labels: &Labels<'_>) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
            .collect()
    }

    #[test]
    fn plain_sample_with_labels_and_timestamp() {
        let s = sample(
            r#"http_requests_total{method="post",code="200"} 1027 1395066363000"#,
            Format::PrometheusText,
        );
        assert_eq!(s.name, "http_requests_total");
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.timestamp_ms, Some(1395066363000));
        assert_eq!(s.labels.get("code").unwrap(), "200");
        assert_eq!(s.labels.style(), LabelStyle::Escaped);
    }

    #[test]
    fn envoy_empty_braces_and_blanks() {
        let s = sample("  envoy_server_live{} 1  ", Format::PrometheusText);
        assert_eq!(s.name, "envoy_server_live");
        assert!(s.labels.is_empty());
        let t = sample("metric_without_labels\t12.47", Format::PrometheusText);
        assert_eq!(t.value, 12.47);
        assert_eq!(t.timestamp_ms, None);
    }

    #[test]
    fn special_values() {
        assert!(sample("a NaN", Format::PrometheusText).value.is_nan());
        assert_eq!(
            sample("a +Inf", Format::PrometheusText).value,
            f64::INFINITY
        );
        assert_eq!(
            sample("a -Inf -5", Format::PrometheusText).timestamp_ms,
            Some(-5)
        );
    }

    #[test]
    fn utf8_quoted_names() {
        let s = sample(
            r#"{"my.metric", "a.b"="x", c="y"} 3"#,
            Format::PrometheusText,
        );
        assert_eq!(s.name, "my.metric");
        assert_eq!(
            label_pairs(&s.labels),
            vec![("a.b".into(), "x".into()), ("c".into(), "y".into())]
        );
        assert!(sample(r#"{"my.metric"} 3"#, Format::PrometheusText)
            .labels
            .is_empty());
    }

    #[test]
    fn openmetrics_exemplar_and_seconds() {
        let s = sample(
            r#"foo_bucket{le="0.5"} 3 1520879607.789 # {trace_id="abc"} 0.4 1520879607.5"#,
            Format::OpenMetrics,
        );
        assert_eq!(s.timestamp_ms, Some(1520879607789));
        let exemplar = s.exemplar.unwrap();
        assert_eq!(exemplar.labels.get("trace_id").unwrap(), "abc");
        assert_eq!(exemplar.value, 0.4);
        assert_eq!(exemplar.timestamp_ms, Some(1520879607500));
        let no_ts = sample(r#"foo_total 3 # {a="b"} 1"#, Format::OpenMetrics);
        assert_eq!(no_ts.timestamp_ms, None);
        assert_eq!(no_ts.exemplar.unwrap().timestamp_ms, None);
    }

    #[test]
    fn envoy_unescaped_label_value_falls_back_to_raw_reading() {
        let s = sample(
            r#"envoy_cluster_x{path="/say "hi"",tag="C:\d\"} 7"#,
            Format::PrometheusText,
        );
        assert_eq!(s.labels.style(), LabelStyle::EnvoyRaw);
        assert_eq!(
            label_pairs(&s.labels),
            vec![
                ("path".into(), r#"/say "hi""#.into()),
                ("tag".into(), r"C:\d\".into())
            ]
        );
        assert_eq!(s.value, 7.0);
    }

    #[test]
    fn metadata_lines() {
        match parse_line(r"# HELP foo Some \\ help\n text", Format::PrometheusText) {
            Ok(Line::Event(Event::Help { family, text })) => {
                assert_eq!(family, "foo");
                assert_eq!(text.unescaped(), "Some \\ help\n text");
            }
            other => panic!("{other:?}"),
        }
        match parse_line(r#"# HELP foo say \"hi\""#, Format::OpenMetrics) {
            Ok(Line::Event(Event::Help { text, .. })) => assert_eq!(text, r#"say "hi""#),
            other => panic!("{other:?}"),
        }
        match parse_line("# HELP foo", Format::PrometheusText) {
            Ok(Line::Event(Event::Help { family, text })) => {
                assert_eq!(family, "foo");
                assert_eq!(text.raw(), "");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line("#\tTYPE foo_seconds histogram ", Format::PrometheusText),
            Ok(Line::Event(Event::Type {
                family: "foo_seconds",
                kind: MetricKind::Histogram
            }))
        ));
        assert!(matches!(
            parse_line("# UNIT foo_seconds seconds", Format::OpenMetrics),
            Ok(Line::Event(Event::Unit {
                family: "foo_seconds",
                unit: "seconds"
            }))
        ));
        assert!(matches!(
            parse_line(r#"# TYPE "my.metric" gauge"#, Format::OpenMetrics),
            Ok(Line::Event(Event::Type {
                family: "my.metric",
                kind: MetricKind::Gauge
            }))
        ));
        assert!(matches!(
            parse_line("# EOF", Format::OpenMetrics),
            Ok(Line::Event(Event::Eof))
        ));
        assert!(matches!(
            parse_line("# EOF now", Format::OpenMetrics),
            Ok(Line::Comment)
        ));
        assert!(matches!(
            parse_line("# just words", Format::OpenMetrics),
            Ok(Line::Comment)
        ));
        assert!(matches!(
            parse_line("#HELPless", Format::OpenMetrics),
            Ok(Line::Comment)
        ));
        assert!(matches!(
            parse_line(" \t", Format::OpenMetrics),
            Ok(Line::Blank)
        ));
    }

    #[test]
    fn bad_lines_and_their_reasons() {
        let cases = [
            ("# TYPE foo", SkipReason::InvalidTypeLine),
            ("# TYPE foo gauge extra", SkipReason::InvalidTypeLine),
            ("# TYPE foo timer", SkipReason::UnknownMetricType),
            ("# HELP", SkipReason::InvalidHelpLine),
            ("# HELP 9foo text", SkipReason::InvalidHelpLine),
            ("# UNIT foo s extra", SkipReason::InvalidUnitLine),
            ("foo", SkipReason::MissingValue),
            ("foo{}", SkipReason::MissingValue),
            ("foo bar", SkipReason::InvalidValue),
            ("foo 1 12x", SkipReason::InvalidTimestamp),
            ("foo 1 2 3", SkipReason::TrailingText),
            ("foo{}1", SkipReason::TrailingText),
            ("9foo 1", SkipReason::InvalidMetricName),
            ("foo-bar 1", SkipReason::InvalidMetricName),
            (r#"foo{a="1" 1"#, SkipReason::MalformedLabelList),
            (r#"foo{a="1""#, SkipReason::UnclosedLabelSet),
            (r#"foo{a="1"} 1 # trace"#, SkipReason::InvalidExemplar),
            (r#"foo{a=1} 1"#, SkipReason::MissingLabelValue),
            (r#"{"foo\"bar"} 1"#, SkipReason::EscapedQuotedName),
            (r#"{foo} 1"#, SkipReason::InvalidMetricName),
        ];
        for (line, reason) in cases {
            assert_eq!(skipped(line), reason, "{line}");
        }
    }
}
