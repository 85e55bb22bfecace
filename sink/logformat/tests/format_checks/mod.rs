//! Properties of the log parsers over untrusted input, shared by the property tests and the
//! `cri` and `access_log` fuzz targets: parsing never panics, a CRI line's message is the
//! line's own tail, the partial-line joiner agrees with a plain model of joining (per-stream
//! concatenation, first chunk's timestamp, cut under the cap at a UTF-8 boundary, every cut
//! counted), an access-log record survives rendering (TEXT and JSON, and TEXT through JSON), and
//! so does a ztunnel connection record (text and JSON, and its structured metadata across them).
//! It checks properties only; the examples live in the crate's unit and fixture tests.

use meshtap_logformat::access::{
    parse_access_log, parse_json, parse_text, render_access_log, AccessLogEncoding, AccessRecord,
};
use meshtap_logformat::cri::{parse_cri_line, CriLine, CriStream, JoinedLine, PartialJoiner};
use meshtap_logformat::ztunnel::{
    parse_ztunnel_access_log, parse_ztunnel_json, parse_ztunnel_text, render_ztunnel_access_log,
    ZtunnelRecord,
};
use meshtap_logformat::{
    log_entry_from_line, parse_rfc3339_nanos, write_rfc3339_millis, LineFormat,
};

/// What the model holds for one stream: the first chunk's timestamp and every byte since.
#[derive(Default)]
struct ModelSlot {
    pending: Option<(i64, Vec<u8>)>,
}

/// Parses every line of `file` as a CRI line and joins the parsed ones with a joiner capped at
/// `max_bytes`, checking each result against the model. Returns how many lines came out.
pub fn check_cri_file(file: &[u8], max_bytes: usize) -> usize {
    let mut joiner = PartialJoiner::new(max_bytes);
    let cap = max_bytes.max(1);
    let mut model = [ModelSlot::default(), ModelSlot::default()];
    let mut emitted = 0usize;
    let mut truncated = 0u64;
    for raw in file.split_inclusive(|b| *b == b'\n') {
        let Ok(line) = parse_cri_line(raw) else {
            continue;
        };
        check_cri_line(raw, &line);
        let slot = &mut model[stream_index(line.stream)];
        let (first_ns, bytes) = slot
            .pending
            .get_or_insert_with(|| (line.timestamp_ns, Vec::new()));
        bytes.extend_from_slice(line.message);
        let expected = (!line.partial).then(|| (*first_ns, std::mem::take(bytes)));
        if expected.is_some() {
            slot.pending = None;
        }
        match (joiner.push(line), expected) {
            (None, None) => {}
            (Some(joined), Some((first_ns, whole))) => {
                check_joined(&joined, line.stream, first_ns, &whole, cap);
                truncated += u64::from(joined.truncated);
                emitted += 1;
                log_entry_from_line(joined.clone(), LineFormat::Envoy);
                log_entry_from_line(joined, LineFormat::Ztunnel);
            }
            (got, want) => panic!("joiner emitted {got:?}, model expected {want:?}"),
        }
        // What the joiner holds: each stream's bytes, or, past the cap, their cut (at most
        // three bytes given back per stream).
        let (mut most, mut least) = (0, 0);
        for (_, bytes) in model.iter().filter_map(|s| s.pending.as_ref()) {
            most += bytes.len().min(cap);
            least += if bytes.len() > cap {
                cap.saturating_sub(3)
            } else {
                bytes.len()
            };
        }
        let held = joiner.pending_bytes();
        assert!(
            (least..=most).contains(&held),
            "holds {held}, model {least}..={most}"
        );
    }
    for joined in joiner.flush_pending() {
        let (first_ns, whole) = model[stream_index(joined.stream)]
            .pending
            .take()
            .expect("flushed a stream the model holds nothing for");
        check_joined(&joined, joined.stream, first_ns, &whole, cap);
        truncated += u64::from(joined.truncated);
        emitted += 1;
    }
    assert!(model.iter().all(|s| s.pending.is_none()));
    assert_eq!(joiner.pending_bytes(), 0);
    assert_eq!(joiner.truncated_lines(), truncated);
    emitted
}

fn stream_index(stream: CriStream) -> usize {
    match stream {
        CriStream::Stdout => 0,
        CriStream::Stderr => 1,
    }
}

/// A parsed line's message is the line's tail, and its timestamp re-renders to itself at
/// millisecond precision.
fn check_cri_line(raw: &[u8], line: &CriLine<'_>) {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    assert!(body.ends_with(line.message));
    let mut text = String::new();
    write_rfc3339_millis(line.timestamp_ns, &mut text);
    let millis = line.timestamp_ns.div_euclid(1_000_000) * 1_000_000;
    assert_eq!(parse_rfc3339_nanos(text.as_bytes()), Ok(millis), "{text}");
}

/// A joined line is the whole of its chunks, or, flagged as truncated, a prefix of them no
/// longer than the cap that gives back at most three bytes to avoid splitting a character.
fn check_joined(
    joined: &JoinedLine<'_>,
    stream: CriStream,
    first_ns: i64,
    whole: &[u8],
    cap: usize,
) {
    assert_eq!(joined.stream, stream);
    assert_eq!(joined.timestamp_ns, first_ns);
    if whole.len() <= cap {
        assert!(!joined.truncated);
        assert_eq!(&*joined.message, whole);
    } else {
        assert!(joined.truncated);
        assert!(whole.starts_with(&joined.message));
        assert!(joined.message.len() <= cap);
        assert!(
            joined.message.len() + 3 >= cap,
            "cut {} of {cap}",
            joined.message.len()
        );
    }
}

/// Parses `line` as an access log in either encoding; a record must render and parse back to
/// itself (up to what the encodings do not carry: sub-millisecond start times, and an empty
/// value, which TEXT prints as `-`). Returns whether the line was an access log.
pub fn check_access_line(line: &str) -> bool {
    let Ok(record) = parse_access_log(line) else {
        return false;
    };
    let want = comparable(&record);
    let json = render_access_log(&record, AccessLogEncoding::Json);
    let from_json = parse_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(comparable(&from_json), want, "through JSON {json}");
    if line.starts_with('[') {
        let text = render_access_log(&record, AccessLogEncoding::Text);
        let from_text = parse_text(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(comparable(&from_text), want, "through TEXT {text}");
        assert_eq!(render_access_log(&from_text, AccessLogEncoding::Text), text);
    }
    record.into_structured_metadata();
    true
}

/// The record as both encodings carry it: start time in whole milliseconds, empty values absent.
fn comparable(record: &AccessRecord) -> AccessRecord {
    let mut r = record.clone();
    r.start_time_ns = r.start_time_ns.div_euclid(1_000_000) * 1_000_000;
    for field in [
        &mut r.method,
        &mut r.path,
        &mut r.protocol,
        &mut r.response_flags,
        &mut r.response_code_details,
        &mut r.connection_termination_details,
        &mut r.upstream_transport_failure_reason,
        &mut r.upstream_service_time,
        &mut r.x_forwarded_for,
        &mut r.user_agent,
        &mut r.request_id,
        &mut r.authority,
        &mut r.upstream_host,
        &mut r.upstream_cluster,
        &mut r.upstream_local_address,
        &mut r.downstream_local_address,
        &mut r.downstream_remote_address,
        &mut r.requested_server_name,
        &mut r.route_name,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    r
}

/// Parses `line` as a ztunnel connection record in either encoding; the parsed record must
/// render and parse back to itself in each encoding, and its structured metadata must be the
/// same through the other encoding (what JSON cannot tell apart, quoted or bare, is not
/// metadata). Returns whether the line was a connection record.
pub fn check_ztunnel_line(line: &str) -> bool {
    let Ok(record) = parse_ztunnel_access_log(line) else {
        return false;
    };
    let json = render_ztunnel_access_log(&record, AccessLogEncoding::Json);
    let from_json = parse_ztunnel_json(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let text = render_ztunnel_access_log(&record, AccessLogEncoding::Text);
    let from_text = parse_ztunnel_text(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let (own, other) = if line.starts_with('{') {
        (from_json, from_text)
    } else {
        (from_text, from_json)
    };
    assert_eq!(own, record, "through its own encoding");
    if text_can_carry(&record) {
        let want = record.into_structured_metadata();
        assert_eq!(
            other.into_structured_metadata(),
            want,
            "through the other encoding"
        );
    }
    true
}

/// Whether the text form can hold what a (JSON) record holds: a message without tab or line
/// break, and field names that are not empty and hold no space, quote, `=`, tab or line break.
fn text_can_carry(record: &ZtunnelRecord) -> bool {
    let breaks = ['\t', '\n', '\r'];
    !record.message.contains(breaks)
        && record.fields.iter().all(|(name, _)| {
            !name.is_empty()
                && !name.contains([' ', '"', '=', '\t', '\n', '\r'])
                && !["level", "time", "scope", "message"].contains(&name.as_str())
        })
}
