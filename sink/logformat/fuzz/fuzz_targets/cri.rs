//! Fuzz target: the first byte picks the joiner's cap (1 to 64 bytes, so cuts are frequent),
//! the rest is a CRI log file. Parsing and joining must never panic, and every joined line
//! must match the model of joining in `tests/format_checks`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/format_checks/mod.rs"]
#[allow(dead_code)]
mod format_checks;

fuzz_target!(|data: &[u8]| {
    let Some((cap, file)) = data.split_first() else {
        return;
    };
    format_checks::check_cri_file(file, usize::from(cap % 64) + 1);
});
