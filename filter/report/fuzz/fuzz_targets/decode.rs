//! Fuzz target: any bytes as a report body, and the same bytes as the protobuf inside a
//! well-formed snappy frame (so the fuzzer reaches the protobuf and reference checks rather
//! than stopping at snappy). Decoding must never panic; a decoded report carries only inline
//! label values, stays within the decode limit once resolved, validates without panicking,
//! and re-encodes to a body that decodes to the same bytes again (compared encoded, so NaN
//! values compare equal).

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtap_report::{decode, encode, validate, DecodeError};

/// Small enough that the fuzzer's inputs can reach it through label references.
const MAX_DECODED: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    check(data);
    let framed = snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compression of an in-memory buffer");
    check(&framed);
});

fn check(body: &[u8]) {
    let report = match decode(body, MAX_DECODED) {
        Ok(report) => report,
        Err(DecodeError::TooLarge { len, max }) => {
            assert!(len > max);
            return;
        }
        Err(_) => return,
    };
    assert!(report.strings.is_empty());
    let mut label_bytes = 0usize;
    for series in report.families.iter().flat_map(|f| &f.series) {
        assert!(series.label_refs.is_empty());
        label_bytes += series.label_values.iter().map(String::len).sum::<usize>();
    }
    assert!(label_bytes <= MAX_DECODED, "{label_bytes} label bytes resolved");
    // Compared as messages: an error may carry a NaN value, which is never equal to itself.
    let verdict = validate(&report).map_err(|e| e.to_string());

    let body_again = encode(&report);
    let again = decode(&body_again, usize::MAX).expect("a decoded report re-encodes decodably");
    assert_eq!(encode(&again), body_again);
    assert_eq!(validate(&again).map_err(|e| e.to_string()), verdict);
}
