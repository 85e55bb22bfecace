//! Properties of decoding an untrusted report body, shared by the property tests and the
//! `decode` fuzz target: decoding never panics, a decoded report carries only inline label
//! values and stays within the decode limit once its references are resolved, validation never
//! panics, and a decoded report re-encodes to a body that decodes to the same bytes again
//! (compared encoded, so NaN values compare equal). It checks properties only.

use meshtap_report::{decode, encode, validate, DecodeError};

/// The decode limit of the checks: small, so that label references can reach it.
pub const MAX_DECODED: usize = 64 << 10;

/// Checks `data` as a body, and as the protobuf inside a well-formed snappy frame (so the
/// protobuf and reference checks are reached rather than stopping at snappy).
pub fn check_body_and_payload(data: &[u8]) {
    check_body(data);
    let framed = snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compression of an in-memory buffer");
    check_body(&framed);
}

/// Decodes `body` under [`MAX_DECODED`] and checks what comes out. Returns the decoded report's
/// validation verdict, or `None` when the body was refused.
pub fn check_body(body: &[u8]) -> Option<Result<(), String>> {
    let report = match decode(body, MAX_DECODED) {
        Ok(report) => report,
        Err(DecodeError::TooLarge { len, max }) => {
            assert!(len > max);
            return None;
        }
        Err(_) => return None,
    };
    assert!(report.strings.is_empty());
    let mut label_bytes = 0usize;
    for series in report.families.iter().flat_map(|f| &f.series) {
        assert!(series.label_refs.is_empty());
        label_bytes += series.label_values.iter().map(String::len).sum::<usize>();
    }
    assert!(
        label_bytes <= MAX_DECODED,
        "{label_bytes} label bytes resolved"
    );
    // Compared as messages: an error may carry a NaN value, which is never equal to itself.
    let verdict = validate(&report).map_err(|e| e.to_string());

    let body_again = encode(&report);
    let again = decode(&body_again, usize::MAX).expect("a decoded report re-encodes decodably");
    assert_eq!(encode(&again), body_again);
    assert_eq!(validate(&again).map_err(|e| e.to_string()), verdict);
    Some(verdict)
}
