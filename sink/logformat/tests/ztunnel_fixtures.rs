//! ztunnel's connection records against `fixtures/ztunnel_access.log` (a copy of the shared
//! reference, written by ztunnel's own `IstioFormat`/`IstioJsonFormat` code with the field lists
//! of its `src/proxy/metrics.rs`; the text and JSON halves describe the same events): every
//! `access` line parses, other targets do not, text lines survive text → record → text byte for
//! byte, and both halves give the same structured metadata, with ztunnel's names and values.

use std::path::PathBuf;

use meshtap_logformat::access::AccessLogEncoding;
use meshtap_logformat::cri::parse_cri_line;
use meshtap_logformat::ztunnel::{
    parse_ztunnel_access_log, render_ztunnel_access_log, ZtunnelLogError,
};

/// The CRI messages of the fixture, text half then JSON half.
fn messages() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ztunnel_access.log");
    let file = std::fs::read_to_string(&path).unwrap();
    file.lines()
        .map(|line| {
            let cri = parse_cri_line(line.as_bytes()).unwrap();
            String::from_utf8(cri.message.to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn text_and_json_halves_give_the_same_metadata() {
    let messages = messages();
    assert_eq!(messages.len(), 16);
    let (text, json) = messages.split_at(8);
    for (text, json) in text.iter().zip(json) {
        let (Ok(from_text), Ok(from_json)) = (
            parse_ztunnel_access_log(text),
            parse_ztunnel_access_log(json),
        ) else {
            assert_eq!(
                parse_ztunnel_access_log(text),
                Err(ZtunnelLogError::NotAccess)
            );
            assert_eq!(
                parse_ztunnel_access_log(json),
                Err(ZtunnelLogError::NotAccess)
            );
            continue;
        };
        assert_eq!(
            render_ztunnel_access_log(&from_text, AccessLogEncoding::Text),
            *text
        );
        assert_eq!(
            render_ztunnel_access_log(&from_json, AccessLogEncoding::Json),
            *json
        );
        assert_eq!(
            render_ztunnel_access_log(&from_json, AccessLogEncoding::Text),
            *text,
            "JSON → text writes addresses bare and strings quoted, as ztunnel"
        );
        assert_eq!(
            from_text.into_structured_metadata(),
            from_json.into_structured_metadata()
        );
    }
}

#[test]
fn a_denied_connection_carries_ztunnel_fields() {
    let messages = messages();
    let record = parse_ztunnel_access_log(&messages[6]).unwrap();
    let metadata = record.into_structured_metadata();
    let value = |name: &str| {
        metadata
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("level"), Some("error"));
    assert_eq!(value("message"), Some("connection complete"));
    assert_eq!(value("src_addr"), Some("10.244.1.12:38430"));
    assert_eq!(value("src_workload"), Some("curl-5b549b49b8-mq2ws"));
    assert_eq!(
        value("src_identity"),
        Some("spiffe://cluster.local/ns/default/sa/curl")
    );
    assert_eq!(value("dst_hbone_addr"), Some("10.244.1.25:9080"));
    assert_eq!(
        value("dst_service"),
        Some("ratings.default.svc.cluster.local")
    );
    assert_eq!(value("direction"), Some("inbound"));
    assert_eq!(value("bytes_sent"), Some("0"));
    assert_eq!(value("duration"), Some("0ms"));
    assert_eq!(
        value("error"),
        Some("connection closed due to policy rejection: allow policies exist, but none allowed")
    );
}

#[test]
fn a_plain_tcp_connection_has_no_identity_nor_hbone_address() {
    let messages = messages();
    let metadata = parse_ztunnel_access_log(&messages[5])
        .unwrap()
        .into_structured_metadata();
    let names: Vec<&str> = metadata.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "level",
            "message",
            "src_addr",
            "src_workload",
            "src_namespace",
            "src_cluster",
            "dst_addr",
            "direction",
            "bytes_sent",
            "bytes_recv",
            "duration"
        ]
    );
}

#[test]
fn escapes_in_quoted_values_are_rust_debug_escapes() {
    let line = "2026-09-21T14:03:19.005237Z\terror\taccess\tconnection complete\terror=\"said \\\"no\\\"\\t\\u{7f}\" bytes_sent=0";
    let record = parse_ztunnel_access_log(line).unwrap();
    assert_eq!(record.fields[0].1.as_str(), "said \"no\"\t\u{7f}");
    assert_eq!(
        render_ztunnel_access_log(&record, AccessLogEncoding::Text),
        line
    );
    for broken in [
        "2026-09-21T14:03:19.005237Z\terror\taccess\tconnection complete\terror=\"open",
        "2026-09-21T14:03:19.005237Z\terror\taccess\tconnection complete\tbytes_sent=0  x=1",
        "2026-09-21T14:03:19.005237Z\tloud\taccess\tconnection complete\t",
        "2026-09-21T14:03:19.005237Z\tinfo\taccess\tconnection complete",
    ] {
        assert!(
            matches!(
                parse_ztunnel_access_log(broken),
                Err(ZtunnelLogError::Malformed { .. })
            ),
            "{broken}"
        );
    }
}
