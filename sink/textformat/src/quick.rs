//! The quick reading of a sample line for callers that cache what a series text converts to:
//! the series text, the value and the timestamp, found from the end of the line without lexing
//! the labels (no allocation, no label scan).
//!
//! The split is only a guess: the caller must use it only for a series text that the full
//! parser ([`crate::Parser`]) has read before with escaped label values
//! ([`crate::LabelStyle::Escaped`]) and reported as [`crate::Sample::series_text`]. For such a
//! text the two readings agree: the escaped label reading of the same bytes ends at the same
//! `}`, and what follows is checked here to be exactly a value and an optional timestamp.
//! Owns that split; it must not decide whether a series text is known.

use crate::format::Format;
use crate::lex::is_blank;
use crate::number::{parse_timestamp_ms, parse_value_bytes};

/// A sample line split from its end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuickSample<'a> {
    /// Everything before the value (the candidate series text), without trailing blanks.
    pub series_text: &'a [u8],
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// The last blank-separated token of `bytes` (trailing blanks ignored) and what precedes it
/// (without its trailing blanks).
fn split_last_token(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().rposition(|&b| !is_blank(b))? + 1;
    let start = bytes[..end].iter().rposition(|&b| is_blank(b))? + 1;
    let before = bytes[..start].iter().rposition(|&b| !is_blank(b))? + 1;
    Some((&bytes[..before], &bytes[start..end]))
}

fn token(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Whether `text` can be a series text as the quick reading sees it: a label block's end, or
/// a bare name (no blank, brace, quote or `#`).
fn ends_a_series(text: &[u8]) -> bool {
    text.last() == Some(&b'}')
        || !text
            .iter()
            .any(|&b| is_blank(b) || matches!(b, b'{' | b'}' | b'"' | b'#'))
}

/// Splits `line` (from [`crate::Parser::next_line`]) into series text, value and timestamp, or
/// `None` when it does not have the shape `<series> <value> [<timestamp>]` starting at its
/// first byte. See the module docs for when the result may be trusted.
pub fn quick_sample(line: &[u8], format: Format) -> Option<QuickSample<'_>> {
    match line.first() {
        None | Some(b'#') => return None,
        Some(&b) if is_blank(b) => return None,
        Some(_) => {}
    }
    let (before_last, last) = split_last_token(line)?;
    if ends_a_series(before_last) {
        return Some(QuickSample {
            series_text: before_last,
            value: parse_value_bytes(last)?,
            timestamp_ms: None,
        });
    }
    let (series_text, value) = split_last_token(before_last)?;
    if !ends_a_series(series_text) {
        return None;
    }
    Some(QuickSample {
        series_text,
        value: parse_value_bytes(value)?,
        timestamp_ms: Some(parse_timestamp_ms(token(last)?, format)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::labels::LabelStyle;
    use crate::parser::Parser;

    fn quick(line: &str) -> Option<(String, f64, Option<i64>)> {
        quick_sample(line.as_bytes(), Format::PrometheusText).map(|q| {
            (
                String::from_utf8(q.series_text.to_vec()).unwrap(),
                q.value,
                q.timestamp_ms,
            )
        })
    }

    #[test]
    fn splits_value_and_timestamp_from_the_end() {
        assert_eq!(
            quick(r#"m{a="x} 5",b="y"} 3"#),
            Some((r#"m{a="x} 5",b="y"}"#.into(), 3.0, None))
        );
        assert_eq!(
            quick("m{a=\"b\"}\t2  1700000000000 "),
            Some((r#"m{a="b"}"#.into(), 2.0, Some(1_700_000_000_000)))
        );
        assert_eq!(quick("up 1"), Some(("up".into(), 1.0, None)));
        assert_eq!(quick("up 1 5").map(|q| q.2), Some(Some(5)));
    }

    #[test]
    fn declines_what_it_cannot_split() {
        for line in [
            "",
            " up 1",
            "# TYPE up gauge",
            "up",
            "up x",
            "a b c 1",
            r#"m{a="b"} 1 2 3"#,
            "up 1 x",
        ] {
            assert_eq!(quick(line), None, "{line:?}");
        }
    }

    /// Where both readings succeed with escaped labels, they agree (the contract the sink's
    /// series cache relies on).
    #[test]
    fn agrees_with_the_full_parser() {
        let body = concat!(
            "m{a=\"x} 5\",b=\"q\\\"\"} 3\n",
            "envoy_server_live{} 1\n",
            "n 2 1700000000000\n",
            "h_bucket{le=\"+Inf\"} 4 1700000000\n",
            "o{a=\"b\"} 1 # {t=\"x\"} 1\n",
        );
        let mut parser = Parser::new(body.as_bytes(), Format::OpenMetrics);
        let mut compared = 0;
        while let Some(line) = parser.next_line() {
            let Some(Ok(Event::Sample(full))) = parser.read_line(line) else {
                panic!("not a sample: {line:?}");
            };
            assert_eq!(full.labels.style(), LabelStyle::Escaped);
            if let Some(q) = quick_sample(line, Format::OpenMetrics) {
                if q.series_text == full.series_text.as_bytes() && full.exemplar.is_none() {
                    assert_eq!(q.value.to_bits(), full.value.to_bits());
                    assert_eq!(q.timestamp_ms, full.timestamp_ms);
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 4);
    }
}
