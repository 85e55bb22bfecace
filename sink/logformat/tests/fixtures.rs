//! Checks the crate against fixture files written in the real formats (Istio TEXT and JSON access
//! logs, containerd and CRI-O CRI files with P/F chunks, lines that are not access logs): every
//! TEXT line must survive TEXT → fields → TEXT byte for byte, and CRI files must join into the
//! same lines.

use std::path::PathBuf;

use meshtap_logformat::access::{
    is_access_log, parse_access_log, parse_json, parse_text, render_access_log, write_json,
    AccessLogEncoding,
};
use meshtap_logformat::cri::{parse_cri_line, CriStream, JoinedLine, PartialJoiner};
use meshtap_logformat::parse_rfc3339_nanos;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn join_file(name: &str) -> Vec<JoinedLine<'static>> {
    let text = fixture(name);
    let mut joiner = PartialJoiner::new(64 * 1024);
    let mut joined = Vec::new();
    for line in text.lines() {
        let cri = parse_cri_line(line.as_bytes()).unwrap_or_else(|error| panic!("{line}: {error}"));
        if let Some(complete) = joiner.push(cri) {
            joined.push(JoinedLine {
                message: complete.message.into_owned().into(),
                ..complete
            });
        }
    }
    assert!(
        joiner.flush_pending().is_empty(),
        "{name}: unterminated P chunks"
    );
    joined
}

#[test]
fn text_lines_round_trip_byte_for_byte() {
    let text = fixture("access_text.log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9);
    for line in lines {
        let record = parse_text(line).unwrap_or_else(|error| panic!("{line}: {error}"));
        assert_eq!(render_access_log(&record, AccessLogEncoding::Text), line);
    }
}

#[test]
fn text_and_json_of_the_same_request_agree() {
    let text = fixture("access_text.log");
    let json = fixture("access_json.log");
    let from_text = parse_text(text.lines().nth(1).unwrap()).unwrap();
    let from_json = parse_json(json.lines().next().unwrap()).unwrap();
    assert_eq!(from_text, from_json);
    let codec_error_text = parse_text(text.lines().nth(4).unwrap()).unwrap();
    let codec_error_json = parse_json(json.lines().nth(1).unwrap()).unwrap();
    assert_eq!(codec_error_text, codec_error_json);
}

#[test]
fn json_lines_parse_whatever_the_key_order_and_render_alphabetically() {
    let json = fixture("access_json.log");
    let lines: Vec<&str> = json.lines().collect();
    let disconnect = parse_json(lines[2]).unwrap();
    assert_eq!(disconnect.response_code, 0);
    assert_eq!(disconnect.response_flags.as_deref(), Some("DC"));
    assert_eq!(disconnect.duration_ms, Some(3106));
    assert_eq!(
        disconnect.downstream_remote_address.as_deref(),
        Some("[fd00:10:244::9]:49888")
    );
    // The first line is already in Envoy's alphabetical order: rendering reproduces it.
    let mut rendered = String::new();
    write_json(&parse_json(lines[0]).unwrap(), &mut rendered);
    assert_eq!(rendered, lines[0]);
    for line in lines {
        let record = parse_json(line).unwrap();
        let again = render_access_log(&record, AccessLogEncoding::Json);
        assert_eq!(parse_json(&again).unwrap(), record);
    }
}

#[test]
fn other_lines_are_not_access_logs() {
    let text = fixture("not_access_logs.log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7);
    for line in lines {
        assert!(!is_access_log(line), "{line}");
        assert!(parse_access_log(line).is_err());
    }
}

#[test]
fn containerd_file_joins_partials_per_stream() {
    let joined = join_file("cri_containerd.log");
    let messages: Vec<String> = joined
        .iter()
        .map(|line| String::from_utf8(line.message.to_vec()).unwrap())
        .collect();
    assert_eq!(joined.len(), 6);
    assert_eq!(joined[1].stream, CriStream::Stderr);
    assert_eq!(
        joined[1].timestamp_ns,
        parse_rfc3339_nanos(b"2023-03-14T08:15:42.200Z").unwrap()
    );
    // stderr's split line completes before stdout's.
    assert_eq!(
        messages[2],
        "2023-03-14T08:15:43.520001Z\twarn\tenvoy config\tgRPC config: stream closed: 13, "
    );
    assert_eq!(joined[2].stream, CriStream::Stderr);
    let access_text = fixture("access_text.log");
    assert_eq!(messages[3], access_text.lines().nth(2).unwrap());
    assert_eq!(
        joined[3].timestamp_ns,
        parse_rfc3339_nanos(b"2023-03-14T08:15:43.520114307Z").unwrap()
    );
    assert_eq!(messages[0], access_text.lines().next().unwrap());
    assert!(
        is_access_log(&messages[0]) && is_access_log(&messages[3]) && is_access_log(&messages[4])
    );
    assert!(!is_access_log(&messages[1]) && !is_access_log(&messages[2]));
    assert_eq!(messages[5], "");
    assert!(joined.iter().all(|line| !line.truncated));
}

#[test]
fn crio_file_uses_offsets_and_joins_tcp_line() {
    let joined = join_file("cri_crio.log");
    assert_eq!(joined.len(), 2);
    assert_eq!(
        joined[0].timestamp_ns,
        parse_rfc3339_nanos(b"2023-03-14T08:15:42.13302157Z").unwrap()
    );
    assert_eq!(
        joined[1].timestamp_ns,
        parse_rfc3339_nanos(b"2023-03-14T08:15:43.520114307Z").unwrap()
    );
    let tcp = std::str::from_utf8(&joined[1].message).unwrap();
    assert_eq!(tcp, fixture("access_text.log").lines().nth(6).unwrap());
}

#[test]
fn joiner_cap_truncates_long_fixture_line() {
    let text = fixture("cri_containerd.log");
    let mut joiner = PartialJoiner::new(100);
    let mut truncated = Vec::new();
    for line in text.lines() {
        if let Some(joined) = joiner.push(parse_cri_line(line.as_bytes()).unwrap()) {
            if joined.truncated {
                assert_eq!(joined.message.len(), 100);
                truncated.push(joined.timestamp_ns);
            }
        }
    }
    // Over 100 bytes: both TEXT access lines, the JSON line and the xdsproxy line; the joined
    // "gRPC config" stderr line and the empty line are shorter.
    assert_eq!(truncated.len(), 4);
    assert_eq!(joiner.truncated_lines(), 4);
}

#[test]
fn every_proper_prefix_of_an_access_line_is_rejected_without_panicking() {
    let text = fixture("access_text.log");
    let json = fixture("access_json.log");
    for line in text.lines().chain(json.lines()) {
        for (cut, _) in line.char_indices().skip(1) {
            let prefix = &line[..cut];
            // A TEXT line cut inside its final word is still a whole line with a shorter route
            // name; anything cut earlier must be rejected.
            if line.starts_with('[') && !line[cut..].contains(' ') {
                continue;
            }
            assert!(
                parse_access_log(prefix).is_err(),
                "accepted prefix {prefix:?}"
            );
        }
    }
}

#[test]
fn cri_prefixes_fail_until_the_tag_is_complete() {
    let text = fixture("cri_containerd.log") + &fixture("cri_crio.log");
    for line in text.lines() {
        let bytes = line.as_bytes();
        // `<timestamp> <stream> <tag>` ends at the third space.
        let header_end = bytes
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b' ')
            .nth(2)
            .map(|(index, _)| index)
            .unwrap();
        for cut in 0..=bytes.len() {
            let parsed = parse_cri_line(&bytes[..cut]);
            if cut < header_end {
                assert!(parsed.is_err(), "accepted {:?}", &line[..cut]);
            } else {
                let message = parsed.unwrap().message;
                assert_eq!(message, &bytes[(header_end + 1).min(cut)..cut]);
            }
        }
    }
}
