//! Independent check of our Loki push bytes: a body built by `PushBatch` is decoded by
//! `sink/tests/protodecode/decode.py` with Python's `protobuf` package against its `push.proto`
//! (declared from Loki's published schema) after snappy-block decompression, and the decoded
//! streams are compared with what went in. A wrong field number, wire type or label escape cannot
//! pass by agreeing with itself. Needs python3 with grpcio-tools, protobuf and cramjam
//! (`cargo xtask test` installs them).

use std::borrow::Cow;

use meshtap_logformat::cri::{CriStream, JoinedLine};
use meshtap_logformat::loki::{
    LabelPairAdapter, LogEntry, OversizeLinePolicy, PushBatch, PushBatchConfig, StreamLabels,
};
use meshtap_logformat::{log_entry_from_line, LineFormat};
use serde_json::json;

#[path = "../../tests/protodecode/run.rs"]
mod protodecode;
use protodecode::{decode_with_python, Wire};

fn metadata(pairs: &[(&str, &str)]) -> Vec<LabelPairAdapter> {
    pairs
        .iter()
        .map(|(name, value)| LabelPairAdapter {
            name: (*name).into(),
            value: (*value).into(),
        })
        .collect()
}

#[test]
fn python_decodes_what_push_batch_encodes() {
    let awkward_value = "quote\" backslash\\ newline\n tab\t ctl\u{1} del\u{7f} é ☃";
    let proxy_stream = StreamLabels::new([
        ("namespace", "shop"),
        ("pod", "cart-7f9c"),
        ("container", "istio-proxy"),
        ("job", "integrations/istio"),
        ("note", awkward_value),
    ])
    .unwrap();
    let app_stream = StreamLabels::new([("namespace", "shop"), ("pod", "orders-1")]).unwrap();

    let mut batch = PushBatch::new(PushBatchConfig {
        max_line_bytes: 600,
        oversize_lines: OversizeLinePolicy::Truncate,
        ..PushBatchConfig::default()
    });
    let access_line = "[2023-03-14T08:15:43.502Z] \"POST /cart/items HTTP/2\" 503 UF,URX upstream_reset_before_response_started{connection_failure} - \"-\" 412 91 27 - \"-\" \"grpc-go/1.56.2\" \"a31e3b59\" \"cart:80\" \"10.42.2.31:8080\" outbound|80||cart.shop.svc.cluster.local - 10.96.40.11:80 10.42.1.9:40990 - default";
    let access_entry = log_entry_from_line(
        JoinedLine {
            timestamp_ns: 1_678_781_743_520_114_307,
            stream: CriStream::Stdout,
            message: Cow::Borrowed(access_line.as_bytes()),
            truncated: false,
        },
        LineFormat::Envoy,
    );
    batch.push(&proxy_stream, access_entry);
    batch.push(
        &proxy_stream,
        LogEntry {
            timestamp_ns: 1_678_781_742_200_000_000,
            line: "2023-03-14T08:15:42.199804Z\tinfo\txdsproxy\tconnected".into(),
            structured_metadata: Vec::new(),
        },
    );
    batch.push(
        &app_stream,
        LogEntry {
            timestamp_ns: -1,
            line: "naïve ☃ line from before the epoch".into(),
            structured_metadata: metadata(&[("trace_id", "0af7651916cd43dd8448eb211c80319c")]),
        },
    );
    let long_line = format!("{}é", "x".repeat(599));
    batch.push(
        &app_stream,
        LogEntry {
            timestamp_ns: 1_678_781_745_000_000_001,
            line: long_line,
            structured_metadata: Vec::new(),
        },
    );
    let push = batch.finish().unwrap().expect("batch holds entries");
    assert_eq!(push.counters.lines_truncated, 1);

    let decoded = decode_with_python(Wire::LokiPush, &push.body, "batch");
    let expected = json!({
        "format": "",
        "unknown_fields": 0,
        "streams": [
            {
                "labels": proxy_stream.as_str(),
                "label_pairs": [
                    ["container", "istio-proxy"],
                    ["job", "integrations/istio"],
                    ["namespace", "shop"],
                    ["note", awkward_value],
                    ["pod", "cart-7f9c"],
                ],
                "hash": 0,
                "entries": [
                    {
                        "has_timestamp": true,
                        "seconds": 1_678_781_742_i64,
                        "nanos": 200_000_000,
                        "line": "2023-03-14T08:15:42.199804Z\tinfo\txdsproxy\tconnected",
                        "structured_metadata": [],
                        "parsed": 0,
                    },
                    {
                        "has_timestamp": true,
                        "seconds": 1_678_781_743_i64,
                        "nanos": 520_114_307,
                        "line": access_line,
                        "structured_metadata": [
                            ["method", "POST"],
                            ["path", "/cart/items"],
                            ["protocol", "HTTP/2"],
                            ["response_code", "503"],
                            ["response_flags", "UF,URX"],
                            ["response_code_details", "upstream_reset_before_response_started{connection_failure}"],
                            ["bytes_received", "412"],
                            ["bytes_sent", "91"],
                            ["duration", "27"],
                            ["request_id", "a31e3b59"],
                            ["authority", "cart:80"],
                            ["upstream_host", "10.42.2.31:8080"],
                            ["upstream_cluster", "outbound|80||cart.shop.svc.cluster.local"],
                            ["downstream_remote_address", "10.42.1.9:40990"],
                            ["route_name", "default"],
                        ],
                        "parsed": 0,
                    },
                ],
            },
            {
                "labels": "{namespace=\"shop\", pod=\"orders-1\"}",
                "label_pairs": [["namespace", "shop"], ["pod", "orders-1"]],
                "hash": 0,
                "entries": [
                    {
                        "has_timestamp": true,
                        "seconds": -1,
                        "nanos": 999_999_999,
                        "line": "naïve ☃ line from before the epoch",
                        "structured_metadata": [["trace_id", "0af7651916cd43dd8448eb211c80319c"]],
                        "parsed": 0,
                    },
                    {
                        "has_timestamp": true,
                        "seconds": 1_678_781_745_i64,
                        "nanos": 1,
                        "line": "x".repeat(599),
                        "structured_metadata": [],
                        "parsed": 0,
                    },
                ],
            },
        ],
    });
    assert_eq!(decoded, expected);
}

#[test]
fn python_decodes_a_large_batch_of_many_streams() {
    let mut batch = PushBatch::new(PushBatchConfig::default());
    let streams: Vec<StreamLabels> = (0..20)
        .map(|index| StreamLabels::new([("pod", format!("pod-{index}"))]).unwrap())
        .collect();
    for sequence in (0..2000_i64).rev() {
        batch.push(
            &streams[(sequence % 20) as usize],
            LogEntry {
                timestamp_ns: 1_700_000_000_000_000_000 + sequence,
                line: format!("line {sequence} {}", "y".repeat((sequence % 300) as usize)),
                structured_metadata: Vec::new(),
            },
        );
    }
    let push = batch.finish().unwrap().unwrap();
    assert!(push.body.len() < push.uncompressed_bytes);
    let decoded = decode_with_python(Wire::LokiPush, &push.body, "large");
    let decoded_streams = decoded["streams"].as_array().unwrap();
    assert_eq!(decoded_streams.len(), 20);
    assert_eq!(decoded["unknown_fields"], 0);
    for stream in decoded_streams {
        let entries = stream["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 100);
        let nanos: Vec<i64> = entries
            .iter()
            .map(|e| e["nanos"].as_i64().unwrap())
            .collect();
        assert!(
            nanos.windows(2).all(|pair| pair[0] < pair[1]),
            "entries out of order"
        );
        for entry in entries {
            let sequence = entry["nanos"].as_i64().unwrap();
            let expected_line =
                format!("line {sequence} {}", "y".repeat((sequence % 300) as usize));
            assert_eq!(entry["line"], expected_line.as_str());
        }
    }
}
