//! Wire framing of a report: protobuf, then snappy *block* format (as remote-write does).
//!
//! Decoding is bounded: the snappy header announces the decompressed length, and a body that
//! would expand past the caller's limit is refused before anything is allocated. The same limit
//! holds after label references are resolved: a report is refused when its inline form (the
//! decompressed bytes plus every referenced value copied into its series) would be over it, so a
//! few bytes of references cannot make the receiver copy one long string millions of times.

use prost::Message;

use crate::proto::Report;

/// Why a report body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid snappy block data: {0}")]
    Snappy(String),
    /// `len` is the decompressed size, or the size of the inline form once label references
    /// are resolved (see [`crate::refs::inline_growth`]).
    #[error("body expands to {len} bytes, over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("body is not a valid report protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("report protocol version {0} is not supported (expected {expected})", expected = crate::PROTOCOL_VERSION)]
    Version(u32),
    #[error("report label references are invalid: {0}")]
    LabelRefs(#[from] crate::validate::ValidationError),
}

/// Encodes and compresses a report.
pub fn encode(report: &Report) -> Vec<u8> {
    let raw = report.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy block compression of an in-memory buffer cannot fail")
}

/// Decompresses and decodes a report, refusing bodies that expand past `max_decoded` bytes
/// (decompressed, or with label references resolved) and reports of another protocol version.
/// Label references are resolved: every series of the returned report carries `label_values`
/// (see [`crate::refs`]).
pub fn decode(body: &[u8], max_decoded: usize) -> Result<Report, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > max_decoded {
        return Err(DecodeError::TooLarge {
            len,
            max: max_decoded,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    let report = Report::decode(raw.as_slice())?;
    if report.protocol_version != crate::PROTOCOL_VERSION {
        return Err(DecodeError::Version(report.protocol_version));
    }
    let inline_len = raw
        .len()
        .saturating_add(crate::refs::inline_growth(&report));
    if inline_len > max_decoded {
        return Err(DecodeError::TooLarge {
            len: inline_len,
            max: max_decoded,
        });
    }
    let mut report = report;
    crate::refs::resolve_label_refs(&mut report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MetricFamily, MetricKind, Series};

    fn sample() -> Report {
        Report {
            protocol_version: crate::PROTOCOL_VERSION,
            timestamp_ms: 1_700_000_000_000,
            families: vec![MetricFamily {
                name: "istio_requests_total".into(),
                kind: MetricKind::Counter as i32,
                label_names: vec!["reporter".into()],
                series: vec![Series {
                    label_values: vec!["source".into()],
                    value: 3.0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn round_trip() {
        let r = sample();
        assert_eq!(decode(&encode(&r), 1 << 20).unwrap(), r);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refuses_oversized_and_garbage() {
        let body = encode(&sample());
        assert!(matches!(
            decode(&body, 4),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(b"\xff\xff\xff\xff\xff\x0f", 1 << 20),
            Err(DecodeError::Snappy(_))
        ));
        let not_proto = snap::raw::Encoder::new().compress_vec(&[0xff; 8]).unwrap();
        assert!(matches!(
            decode(&not_proto, 1 << 20),
            Err(DecodeError::Protobuf(_))
        ));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decode_resolves_the_reference_form() {
        let mut r = sample();
        let series = &mut r.families[0].series[0];
        series.label_values.clear();
        series.label_refs = vec![1];
        r.strings = vec!["unused".into(), "source".into()];
        assert_eq!(decode(&encode(&r), 1 << 20).unwrap(), sample());
        r.families[0].series[0].label_refs = vec![2];
        assert!(matches!(
            decode(&encode(&r), 1 << 20),
            Err(DecodeError::LabelRefs(_))
        ));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refuses_references_that_expand_past_the_limit() {
        // One 1 KiB string referenced 4 096 times: a body of a few KiB whose inline form is
        // over 4 MiB.
        let mut r = sample();
        r.strings = vec!["x".repeat(1024)];
        r.families[0].label_names = vec!["reporter".into()];
        r.families[0].series[0].label_values.clear();
        r.families[0].series[0].label_refs = vec![0; 4096];
        let body = encode(&r);
        assert!(body.len() < 16 << 10);
        match decode(&body, 1 << 20) {
            Err(DecodeError::TooLarge { len, max }) => {
                assert!(len > 4096 * 1024, "{len}");
                assert_eq!(max, 1 << 20);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // The same report decodes under a limit over its inline form (4 096 * 1 026 bytes
        // plus the decompressed body).
        let decoded = decode(&body, 5 << 20).unwrap();
        assert_eq!(decoded.families[0].series[0].label_values.len(), 4096);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refuses_other_versions() {
        let mut r = sample();
        r.protocol_version = 9;
        assert!(matches!(
            decode(&encode(&r), 1 << 20),
            Err(DecodeError::Version(9))
        ));
    }
}
