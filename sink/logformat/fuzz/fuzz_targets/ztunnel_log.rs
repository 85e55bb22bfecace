//! Fuzz target: any text, line by line, as a ztunnel connection record (text or JSON). Parsing
//! must never panic, and every record must render and parse back to itself
//! (`tests/format_checks`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/format_checks/mod.rs"]
#[allow(dead_code)]
mod format_checks;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.split_inclusive('\n') {
            format_checks::check_ztunnel_line(line);
        }
    }
});
