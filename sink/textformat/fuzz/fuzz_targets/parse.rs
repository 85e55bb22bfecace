//! Fuzz target: any bytes, in both declared formats, through the event parser and the
//! family-aware reader. It must never panic, the counters must stay consistent, and every
//! skipped line names its position: a 1-based line number, increasing, within the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtap_textformat::{Event, Format, Parser, TypedSamples};

fuzz_target!(|body: &[u8]| {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let mut parser = Parser::new(body, format);
        let mut items = 0u64;
        let mut skipped = 0u64;
        let mut last_skipped_line = 0u64;
        let body_lines = body.split(|b| *b == b'\n').count() as u64;
        while let Some(item) = parser.next() {
            items += 1;
            if let Err(skip) = &item {
                skipped += 1;
                assert!(
                    skip.line_no > last_skipped_line,
                    "{skip:?} after line {last_skipped_line}"
                );
                assert!(skip.line_no <= body_lines, "{skip:?} in {body_lines} lines");
                assert_eq!(skip.line_no, parser.line_no());
                last_skipped_line = skip.line_no;
            }
            if let Ok(Event::Sample(sample)) = item {
                assert_eq!(sample.labels.iter().count(), sample.labels.len());
                for label in &sample.labels {
                    std::hint::black_box(label.value.unescaped());
                }
            }
        }
        let stats = parser.stats();
        assert!(items + stats.comments <= stats.lines);
        assert_eq!(skipped, stats.bad_lines);

        let mut reader = TypedSamples::new(Parser::new(body, format));
        for sample in reader.by_ref().flatten() {
            for (name, value) in sample.normalized_labels() {
                std::hint::black_box((name, value));
            }
        }
        let typed = reader.stats();
        assert_eq!(
            typed.samples + typed.bad_lines,
            stats.samples + stats.bad_lines
        );
    }
});
