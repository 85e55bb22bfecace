//! Property tests: random families written by a small text-0.0.4 writer parse back to the
//! same names, labels, values and timestamps; Envoy-style unescaped values come back
//! exactly; histogram bounds in any spelling normalise to one text; and arbitrary bytes or
//! token soups never panic, never loop, and keep the counters consistent.

use std::fmt::Write as _;

use meshtap_textformat::{
    canonical_float, Event, Format, LabelStyle, MetricKind, Parser, SeriesRole, TypedSamples,
};
use proptest::prelude::*;

/// One series to write.
#[derive(Clone, Debug)]
struct Series {
    labels: Vec<(String, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// One non-histogram family to write.
#[derive(Clone, Debug)]
struct Family {
    name: String,
    kind: &'static str,
    help: Option<String>,
    series: Vec<Series>,
}

/// Text with the characters that need escaping well represented.
fn tricky_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            any::<char>(),
            prop::sample::select(vec!['"', '\\', '\n', '{', '}', ',', '=', ' ', '#']),
        ],
        0..16,
    )
    .prop_map(String::from_iter)
}

fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}"
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

/// Any float, with the special values well represented.
fn sample_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
    ]
}

fn series(value_text: impl Strategy<Value = String>) -> impl Strategy<Value = Series> {
    (
        prop::collection::vec((label_name(), value_text), 0..6),
        sample_value(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(labels, value, timestamp_ms)| Series {
            labels,
            value,
            timestamp_ms,
        })
}

fn family() -> impl Strategy<Value = Family> {
    (
        metric_name(),
        prop::sample::select(vec!["counter", "gauge", "untyped"]),
        // The parser skips blanks before HELP text and keeps the rest; a `\r` ending a line
        // is a line break.
        prop::option::of(tricky_text().prop_map(|h| {
            h.trim_start_matches([' ', '\t'])
                .trim_end_matches('\r')
                .to_owned()
        })),
        prop::collection::vec(series(tricky_text()), 1..5),
    )
        .prop_map(|(name, kind, help, series)| Family {
            name,
            kind,
            help,
            series,
        })
}

/// Writes a float in one of the spellings the formats allow, chosen by `style`.
fn write_float(out: &mut String, value: f64, style: u8) {
    if value.is_nan() {
        out.push_str(["NaN", "nan", "NaN"][usize::from(style % 3)]);
    } else if value.is_infinite() {
        let sign = if value > 0.0 { "+" } else { "-" };
        let word = ["Inf", "inf", "Infinity"][usize::from(style % 3)];
        write!(out, "{sign}{word}").unwrap();
    } else if style.is_multiple_of(2) {
        write!(out, "{value}").unwrap();
    } else {
        write!(out, "{value:e}").unwrap();
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

/// Text 0.0.4 for `families`, with escaping.
fn render(families: &[Family], float_style: u8) -> String {
    let mut out = String::new();
    for family in families {
        if let Some(help) = &family.help {
            writeln!(out, "# HELP {} {}", family.name, escape_help(help)).unwrap();
        }
        writeln!(out, "# TYPE {} {}", family.name, family.kind).unwrap();
        for series in &family.series {
            out.push_str(&family.name);
            out.push('{');
            for (name, value) in &series.labels {
                write!(out, "{name}=\"{}\",", escape_label_value(value)).unwrap();
            }
            out.push_str("} ");
            write_float(&mut out, series.value, float_style);
            if let Some(ts) = series.timestamp_ms {
                write!(out, " {ts}").unwrap();
            }
            out.push('\n');
        }
    }
    out
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// Lines in a body as the parser counts them.
fn line_count(body: &[u8]) -> u64 {
    let breaks = body.iter().filter(|&&b| b == b'\n').count() as u64;
    breaks + u64::from(!body.is_empty() && !body.ends_with(b"\n"))
}

/// Parses `body` in both formats, through both layers, checking the counters.
fn check_invariants(body: &[u8]) {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let mut parser = Parser::new(body, format);
        let (mut items, mut errors, mut samples) = (0u64, 0u64, 0u64);
        for item in parser.by_ref() {
            items += 1;
            match item {
                Err(_) => errors += 1,
                Ok(Event::Sample(sample)) => {
                    samples += 1;
                    assert_eq!(sample.labels.iter().count(), sample.labels.len());
                    for label in sample.labels.iter() {
                        let _ = label.value.unescaped();
                    }
                    if let Some(exemplar) = sample.exemplar {
                        assert_eq!(exemplar.labels.iter().count(), exemplar.labels.len());
                    }
                }
                Ok(_) => {}
            }
        }
        let stats = *parser.stats();
        assert_eq!(stats.lines, line_count(body));
        assert!(items + stats.comments <= stats.lines);
        assert_eq!(stats.bad_lines, errors);
        assert_eq!(stats.samples, samples);
        assert_eq!(stats.by_reason.iter().map(|(_, n)| n).sum::<u64>(), errors);

        let mut reader = TypedSamples::new(Parser::new(body, format));
        let typed_ok = reader.by_ref().filter(|item| item.is_ok()).count() as u64;
        let typed_stats = reader.stats();
        assert_eq!(typed_stats.samples, typed_ok);
        assert_eq!(
            typed_stats.samples + typed_stats.bad_lines,
            samples + errors
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn written_families_parse_back(families in prop::collection::vec(family(), 1..6), style in any::<u8>()) {
        let body = render(&families, style);
        let mut parser = Parser::new(body.as_bytes(), Format::PrometheusText);
        let events: Vec<Event<'_>> = parser.by_ref().map(|e| e.expect("written lines are valid")).collect();
        let mut events = events.iter();
        for family in &families {
            if let Some(help) = &family.help {
                match events.next() {
                    Some(Event::Help { family: name, text }) => {
                        prop_assert_eq!(*name, family.name.as_str());
                        prop_assert_eq!(text.unescaped(), help.as_str());
                    }
                    other => prop_assert!(false, "expected HELP, got {:?}", other),
                }
            }
            match events.next() {
                Some(Event::Type { family: name, kind }) => {
                    prop_assert_eq!(*name, family.name.as_str());
                    prop_assert_eq!(Some(*kind), MetricKind::from_type_name(family.kind));
                }
                other => prop_assert!(false, "expected TYPE, got {:?}", other),
            }
            for series in &family.series {
                let Some(Event::Sample(sample)) = events.next() else {
                    return Err(TestCaseError::fail("expected a sample"));
                };
                prop_assert_eq!(sample.name, family.name.as_str());
                prop_assert_eq!(sample.labels.style(), LabelStyle::Escaped);
                let labels: Vec<(String, String)> = sample
                    .labels
                    .iter()
                    .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
                    .collect();
                prop_assert_eq!(&labels, &series.labels);
                prop_assert!(same_float(sample.value, series.value), "{} vs {}", sample.value, series.value);
                prop_assert_eq!(sample.timestamp_ms, series.timestamp_ms);
            }
        }
        prop_assert!(events.next().is_none());
        prop_assert_eq!(parser.stats().bad_lines, 0);
    }

    #[test]
    fn envoy_unescaped_values_come_back_exactly(
        name in metric_name(),
        labels in prop::collection::vec(
            (label_name(), "[a-z \"/,}{=]{0,12}".prop_filter("ambiguous for the raw reading", |v| !v.contains("\"}") && !v.contains("\","))),
            1..5,
        ),
        value in -1e9f64..1e9,
    ) {
        let mut line = format!("{name}{{");
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            write!(line, "{label}=\"{text}\"").unwrap();
        }
        write!(line, "}} {value}").unwrap();
        let mut parser = Parser::new(line.as_bytes(), Format::PrometheusText);
        let Some(Ok(Event::Sample(sample))) = parser.next() else {
            return Err(TestCaseError::fail(format!("not a sample: {line}")));
        };
        let got: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
            .collect();
        prop_assert_eq!(&got, &labels);
        prop_assert_eq!(sample.value, value);
    }

    #[test]
    fn bucket_bounds_in_any_spelling_normalise_to_one_text(
        mut bounds in prop::collection::vec(-1e30f64..1e30, 1..12),
        spelling in 0u8..3,
    ) {
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let mut body = String::from("# TYPE h histogram\n");
        for (i, bound) in bounds.iter().enumerate() {
            let text = match spelling {
                0 => format!("{bound}"),
                1 => format!("{bound:e}"),
                _ => format!("{bound:E}"),
            };
            writeln!(body, "h_bucket{{le=\"{text}\"}} {i}").unwrap();
        }
        writeln!(body, "h_bucket{{le=\"+Inf\"}} {}\nh_count {}", bounds.len(), bounds.len()).unwrap();
        let samples: Vec<_> = TypedSamples::new(Parser::new(body.as_bytes(), Format::PrometheusText))
            .map(|item| item.expect("written lines are valid"))
            .collect();
        prop_assert_eq!(samples.len(), bounds.len() + 2);
        for (sample, bound) in samples.iter().zip(&bounds) {
            prop_assert_eq!(sample.role, SeriesRole::Bucket { le: *bound });
            let (_, le) = sample.normalized_labels().next().unwrap();
            let canonical = canonical_float(*bound);
            prop_assert_eq!(le.as_ref(), canonical.as_str());
            prop_assert_eq!(le.parse::<f64>().unwrap(), *bound);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600)) {
        check_invariants(&body);
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(
        prop::sample::select(vec![
            "a", "le", "quantile", "_bucket", "_sum", "_count", "_total", "{", "}", "\"", "\\",
            "=", ",", " ", "\t", "#", " # ", "HELP", "TYPE", "UNIT", "EOF", "histogram", "summary",
            "counter", "1", "-2.5e3", "NaN", "+Inf", "\n", "\r", "é", ".",
        ]),
        0..80,
    )) {
        check_invariants(tokens.concat().as_bytes());
    }
}
