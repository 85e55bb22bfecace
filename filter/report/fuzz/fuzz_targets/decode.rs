//! Fuzz target: any bytes as a report body, and as the protobuf inside a snappy frame. The
//! checks are the report property tests' (`filter/report/tests/decode_checks`): decoding never
//! panics, resolved references stay within the limit, and decoded reports round-trip.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/decode_checks/mod.rs"]
mod decode_checks;

fuzz_target!(|data: &[u8]| {
    decode_checks::check_body_and_payload(data);
});
