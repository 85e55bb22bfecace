//! Fuzz target: bytes describe a batch of samples (see `tests/encode_checks`); the encoder must
//! never panic, and its request must decode to exactly the queued samples, its compressed body
//! to its raw one.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/encode_checks/mod.rs"]
mod encode_checks;

fuzz_target!(|data: &[u8]| encode_checks::check_encoding(data));
