//! Property tests of the report codec over untrusted bodies: arbitrary bytes, mutated bodies of
//! real reports and arbitrary reports never make decoding panic (checks in `decode_checks`);
//! reports in either label form round-trip through encode and decode to their inline form; and
//! references that would resolve past the decode limit are refused as too large.

#![cfg(not(target_arch = "wasm32"))]

mod decode_checks;

use decode_checks::{check_body, check_body_and_payload, MAX_DECODED};
use meshtap_report::{
    decode, encode, validate, DecodeError, MetricFamily, MetricKind, Proxy, Report, Series,
    PROTOCOL_VERSION,
};
use proptest::prelude::*;

/// One family: a kind, label names, histogram bounds, and series of label values.
fn family() -> impl Strategy<Value = MetricFamily> {
    (
        "[a-z_][a-z0-9_]{0,12}",
        1..=3i32,
        prop::collection::vec("[a-z][a-z0-9_]{0,6}", 0..4),
        prop::collection::vec(0.0..1e6f64, 0..4),
        prop::collection::vec(
            (
                prop::collection::vec("[ -~]{0,6}", 0..4),
                prop_oneof![any::<f64>(), 0.0..1e9f64],
                prop::collection::vec(any::<u64>(), 0..5),
            ),
            0..4,
        ),
    )
        .prop_map(|(name, kind, label_names, bounds, series)| MetricFamily {
            name,
            kind,
            help: String::new(),
            label_names,
            bounds,
            series: series
                .into_iter()
                .map(|(label_values, value, bucket_counts)| Series {
                    label_values,
                    value,
                    bucket_counts,
                    sum: value,
                    label_refs: Vec::new(),
                })
                .collect(),
        })
}

fn report() -> impl Strategy<Value = Report> {
    (
        prop::collection::vec(family(), 0..4),
        any::<u64>(),
        prop::option::of(("[a-z]{0,4}", "[a-z0-9-]{0,6}")),
    )
        .prop_map(|(families, sequence, proxy)| Report {
            protocol_version: PROTOCOL_VERSION,
            proxy: proxy.map(|(namespace, pod)| Proxy {
                namespace,
                pod,
                ..Default::default()
            }),
            sequence,
            families,
            ..Default::default()
        })
}

/// The same report with every series' values moved into a shared string table (reversed, so
/// indexes are not simply positions).
fn to_reference_form(report: &Report) -> Report {
    let mut out = report.clone();
    let mut strings: Vec<String> = Vec::new();
    for series in out.families.iter_mut().flat_map(|f| f.series.iter_mut()) {
        if series.label_values.is_empty() {
            continue;
        }
        for value in std::mem::take(&mut series.label_values) {
            let index = strings.iter().position(|s| *s == value).unwrap_or_else(|| {
                strings.push(value);
                strings.len() - 1
            });
            series.label_refs.push(index as u32);
        }
    }
    let last = strings.len().saturating_sub(1) as u32;
    for series in out.families.iter_mut().flat_map(|f| f.series.iter_mut()) {
        for index in &mut series.label_refs {
            *index = last - *index;
        }
    }
    strings.reverse();
    out.strings = strings;
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        check_body_and_payload(&data);
    }

    #[test]
    fn mutated_reports_never_panic(
        report in report(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        use prost::Message;
        let mut payload = to_reference_form(&report).encode_to_vec();
        if !payload.is_empty() {
            for (at, byte) in &edits {
                let i = at.index(payload.len());
                payload[i] = *byte;
            }
            payload.truncate(cut.index(payload.len() + 1));
        }
        check_body_and_payload(&payload);
    }

    #[test]
    fn both_label_forms_decode_to_the_inline_form(report in report()) {
        let inline = encode(&report);
        let decoded = decode(&inline, MAX_DECODED).unwrap();
        prop_assert_eq!(encode(&decoded), inline.clone());
        let by_reference = encode(&to_reference_form(&report));
        let resolved = decode(&by_reference, MAX_DECODED).unwrap();
        prop_assert_eq!(encode(&resolved), inline);
        prop_assert_eq!(
            validate(&resolved).map_err(|e| e.to_string()),
            validate(&report).map_err(|e| e.to_string())
        );
        prop_assert!(check_body(&by_reference).is_some());
    }

    #[test]
    fn references_past_the_limit_are_refused(len in 1usize..4096, refs in 1usize..64) {
        let mut report = Report {
            protocol_version: PROTOCOL_VERSION,
            strings: vec!["v".repeat(len)],
            families: vec![MetricFamily {
                name: "m".into(),
                kind: MetricKind::Gauge as i32,
                series: vec![Series { label_refs: vec![0; refs], ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = encode(&report);
        // The decompressed body fits; only the resolved references do not.
        let limit = snap::raw::decompress_len(&body).unwrap() + len * refs / 2;
        let decoded = decode(&body, limit);
        prop_assert!(matches!(decoded, Err(DecodeError::TooLarge { .. })), "{:?}", decoded);
        report.strings[0].clear();
        prop_assert!(decode(&encode(&report), MAX_DECODED).is_ok());
    }
}
