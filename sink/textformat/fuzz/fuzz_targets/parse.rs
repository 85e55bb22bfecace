//! Fuzz target: any bytes, in both declared formats, through the event parser and the
//! family-aware reader. It must never panic, and the counters must stay consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtap_textformat::{Event, Format, Parser, TypedSamples};

fuzz_target!(|body: &[u8]| {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let mut parser = Parser::new(body, format);
        let mut items = 0u64;
        for item in parser.by_ref() {
            items += 1;
            if let Ok(Event::Sample(sample)) = item {
                assert_eq!(sample.labels.iter().count(), sample.labels.len());
                for label in &sample.labels {
                    std::hint::black_box(label.value.unescaped());
                }
            }
        }
        let stats = parser.stats();
        assert!(items + stats.comments <= stats.lines);

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
