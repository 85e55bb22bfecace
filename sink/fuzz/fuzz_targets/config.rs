//! Fuzz target: any text as a config document, loaded with a fixed environment. Loading must
//! never panic, and every error must say where the problem is (a key path, or a YAML
//! position): the checks are the config property tests' (`sink/tests/config_check`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/config_check/mod.rs"]
mod config_check;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        config_check::load_and_check(text);
    }
});
