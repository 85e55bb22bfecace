//! Property tests of the log parsers over untrusted lines: arbitrary bytes never make CRI
//! parsing, joining or access-log parsing panic; CRI files cut into partial chunks, with the
//! two streams interleaved, join back to exactly their lines in order (or, over the cap, to
//! counted prefixes); and access-log records round-trip through TEXT and JSON. The shared
//! checks (joiner against a model, render and parse back) are in `format_checks`.

mod format_checks;

use format_checks::{check_access_line, check_cri_file, check_ztunnel_line};
use meshtap_logformat::access::{render_access_log, AccessLogEncoding, AccessRecord};
use meshtap_logformat::cri::{parse_cri_line, CriStream, PartialJoiner};
use meshtap_logformat::ztunnel::{render_ztunnel_access_log, FieldValue, ZtunnelRecord};
use proptest::prelude::*;

/// A CRI file written from whole lines per stream: each line cut into `P` chunks and a final
/// `F` chunk, the two streams' chunks interleaved as `order` says (per-stream order kept).
fn cri_file(lines: &[(bool, String, Vec<usize>)], order: &[bool]) -> Vec<u8> {
    let mut chunks: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for (index, (stderr, text, cuts)) in lines.iter().enumerate() {
        let stream = if *stderr { "stderr" } else { "stdout" };
        let mut pieces: Vec<&str> = Vec::new();
        let mut rest = text.as_str();
        for cut in cuts {
            let at = (0..=rest.len().min(*cut))
                .rev()
                .find(|i| rest.is_char_boundary(*i));
            let (head, tail) = rest.split_at(at.unwrap_or(0));
            pieces.push(head);
            rest = tail;
        }
        let seconds = 10 + index % 50;
        for (i, piece) in pieces.iter().chain([&rest]).enumerate() {
            let tag = if i == pieces.len() { "F" } else { "P" };
            let chunk = format!("2024-06-28T06:40:{seconds:02}.{i:09}Z {stream} {tag} {piece}\n");
            chunks[usize::from(*stderr)].push(chunk.into_bytes());
        }
    }
    let [stdout, stderr] = chunks;
    let mut next = [stdout.into_iter(), stderr.into_iter()];
    let mut file = Vec::new();
    for pick in order.iter().map(|b| usize::from(*b)) {
        if let Some(chunk) = next[pick].next() {
            file.extend_from_slice(&chunk);
        }
    }
    let [stdout_rest, stderr_rest] = next;
    file.extend(stdout_rest.chain(stderr_rest).flatten());
    file
}

fn line_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            any::<char>().prop_filter("no line break", |c| *c != '\n'),
            Just(' '),
            Just('é'),
        ],
        0..40,
    )
    .prop_map(String::from_iter)
}

/// A value TEXT can carry in a space-free field: no spaces, quotes or line breaks, and not
/// `-` (which means absent).
fn token() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[!#-~]{1,12}".prop_filter("not a dash", |s| s != "-"))
}

/// A value TEXT can carry between quotes: anything but `"` and line breaks.
fn quoted() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[ !#-~é]{1,16}".prop_filter("not a dash", |s| s != "-"))
}

fn text_record() -> impl Strategy<Value = AccessRecord> {
    (
        (0i64..4_102_444_800_000).prop_map(|ms| ms * 1_000_000),
        prop::option::of((
            "[A-Z]{1,7}",
            "/[!#-~]{0,12}( [!#-~]{1,4})?",
            "HTTP/[0-9.]{1,3}",
        )),
        (any::<u32>(), token(), token(), token(), quoted()),
        (
            any::<u64>(),
            any::<u64>(),
            prop::option::of(any::<u64>()),
            token(),
        ),
        (quoted(), quoted(), quoted(), quoted(), quoted()),
        (token(), token(), token(), token(), token(), token()),
    )
        .prop_map(|(start, request, codes, bytes, quoted, tokens)| {
            let (method, path, protocol) = match request {
                Some((m, p, v)) => (Some(m), Some(p), Some(v)),
                None => (None, None, None),
            };
            AccessRecord {
                start_time_ns: start,
                method,
                path,
                protocol,
                response_code: codes.0,
                response_flags: codes.1,
                response_code_details: codes.2,
                connection_termination_details: codes.3,
                upstream_transport_failure_reason: codes.4,
                bytes_received: bytes.0,
                bytes_sent: bytes.1,
                duration_ms: bytes.2,
                upstream_service_time: bytes.3,
                x_forwarded_for: quoted.0,
                user_agent: quoted.1,
                request_id: quoted.2,
                authority: quoted.3,
                upstream_host: quoted.4,
                upstream_cluster: tokens.0,
                upstream_local_address: tokens.1,
                downstream_local_address: tokens.2,
                downstream_remote_address: tokens.3,
                requested_server_name: tokens.4,
                route_name: tokens.5,
                source: None,
                destination: None,
            }
        })
}

/// A ztunnel field value of any kind ztunnel writes: any string (quoted), a Display token (no
/// space), an integer.
fn ztunnel_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        ".{0,16}".prop_map(FieldValue::Quoted),
        "[0-9]{1,3}\\.[0-9a-f.:]{0,17}".prop_map(FieldValue::Bare),
        any::<u64>().prop_map(|n| FieldValue::Number(n.to_string())),
    ]
}

/// A connection record as ztunnel writes one: its levels, target `access`, field names in
/// its dotted style.
fn ztunnel_record() -> impl Strategy<Value = ZtunnelRecord> {
    (
        prop::sample::select(vec!["info", "error", "warn", "debug"]),
        prop::sample::select(vec!["connection complete", "connection opened"]),
        0u32..1_000_000,
        prop::collection::vec(("[a-z_]{1,8}(\\.[a-z_]{1,8})?", ztunnel_value()), 0..8),
    )
        .prop_map(|(level, message, micros, fields)| ZtunnelRecord {
            time: format!("2026-09-21T14:03:17.{micros:06}Z"),
            level: level.to_owned(),
            target: "access".to_owned(),
            message: message.to_owned(),
            fields: fields
                .into_iter()
                .filter(|(name, _)| !["level", "time", "scope", "message"].contains(&name.as_str()))
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512), cap in 1usize..64) {
        check_cri_file(&data, cap);
        if let Ok(text) = std::str::from_utf8(&data) {
            for line in text.split_inclusive('\n') {
                check_access_line(line);
                check_ztunnel_line(line);
            }
        }
    }

    #[test]
    fn cri_line_soups_never_panic(
        words in prop::collection::vec(
            prop_oneof![
                Just("2024-06-28T06:40:16.285918Z".to_string()),
                Just("2024-06-28T08:40:16+02:00".to_string()),
                Just("stdout".to_string()), Just("stderr".to_string()),
                Just("P".to_string()), Just("F".to_string()), Just("P:x".to_string()),
                Just(" ".to_string()), Just("\n".to_string()), "[ -~é]{0,6}",
            ],
            0..40,
        ),
        cap in 1usize..32,
    ) {
        check_cri_file(words.concat().as_bytes(), cap);
    }

    #[test]
    fn partial_chunks_join_back_to_their_lines(
        lines in prop::collection::vec(
            (any::<bool>(), line_text(), prop::collection::vec(0usize..12, 0..4)),
            0..12,
        ),
        order in prop::collection::vec(any::<bool>(), 0..64),
        cap in prop_oneof![Just(1 << 20), 1usize..24],
    ) {
        let file = cri_file(&lines, &order);
        prop_assert_eq!(check_cri_file(&file, cap), lines.len());
        let mut joiner = PartialJoiner::new(cap);
        let mut joined: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for raw in file.split_inclusive(|b| *b == b'\n') {
            let line = parse_cri_line(raw).expect("a written chunk parses");
            if let Some(out) = joiner.push(line) {
                joined[usize::from(out.stream == CriStream::Stderr)].push(out.message.into_owned());
            }
        }
        prop_assert_eq!(joiner.pending_bytes(), 0);
        for (stream, got) in joined.iter().enumerate() {
            let want: Vec<&[u8]> = lines
                .iter()
                .filter(|(stderr, ..)| usize::from(*stderr) == stream)
                .map(|(_, text, _)| text.as_bytes())
                .collect();
            prop_assert_eq!(got.len(), want.len());
            for (got, want) in got.iter().zip(want) {
                prop_assert!(want.starts_with(got));
                prop_assert_eq!(got.len() == want.len(), want.len() <= cap);
            }
        }
    }

    #[test]
    fn text_records_round_trip(record in text_record()) {
        let text = render_access_log(&record, AccessLogEncoding::Text);
        prop_assert!(check_access_line(&text), "not parsed back: {}", text);
        let json = render_access_log(&record, AccessLogEncoding::Json);
        prop_assert!(check_access_line(&json), "not parsed back: {}", json);
        let back = meshtap_logformat::access::parse_text(&text).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn json_records_carry_any_text(record in text_record(), values in prop::collection::vec(".{0,12}", 3)) {
        let mut record = record;
        record.user_agent = Some(values[0].clone());
        record.path = Some(values[1].clone());
        record.route_name = Some(values[2].clone());
        let json = render_access_log(&record, AccessLogEncoding::Json);
        let back = meshtap_logformat::access::parse_json(&json).unwrap();
        let dash = |v: &Option<String>| v.as_deref().filter(|v| *v != "-").map(str::to_owned);
        prop_assert_eq!(back.user_agent, dash(&record.user_agent));
        prop_assert_eq!(back.path, dash(&record.path));
        prop_assert_eq!(back.route_name, dash(&record.route_name));
        prop_assert!(check_access_line(&json));
    }

    #[test]
    fn ztunnel_records_round_trip(record in ztunnel_record()) {
        for encoding in [AccessLogEncoding::Text, AccessLogEncoding::Json] {
            let line = render_ztunnel_access_log(&record, encoding);
            prop_assert!(check_ztunnel_line(&line), "not parsed back: {}", line);
        }
        let text = render_ztunnel_access_log(&record, AccessLogEncoding::Text);
        let back = meshtap_logformat::ztunnel::parse_ztunnel_text(&text).unwrap();
        prop_assert_eq!(back, record);
    }
}
