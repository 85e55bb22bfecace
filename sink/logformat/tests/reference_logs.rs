//! Parses every real access-log capture in the workspace's shared reference folder
//! (`<repo>/../shared/reference/access-logs`), when that folder exists: TEXT lines must round-trip
//! byte for byte, JSON lines must parse, CRI-wrapped lines must unwrap into access logs, and the
//! malformed capture must be reported as not-an-access-log. Skips (passing) where the folder is absent.

use std::path::PathBuf;

use meshtap_logformat::access::{
    is_access_log, parse_json, parse_text, render_access_log, AccessLogEncoding,
};
use meshtap_logformat::cri::{parse_cri_line, PartialJoiner};

fn reference_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/access-logs");
    dir.is_dir().then_some(dir)
}

fn assert_text_round_trips(line: &str, file: &str) {
    let record = parse_text(line).unwrap_or_else(|error| panic!("{file}: {error}\n{line}"));
    assert_eq!(
        render_access_log(&record, AccessLogEncoding::Text),
        line,
        "{file}"
    );
}

#[test]
fn every_reference_capture_parses() {
    let Some(dir) = reference_dir() else {
        eprintln!("shared reference access logs not present; skipping");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no .log files", dir.display());

    let mut checked_lines = 0;
    let mut saw_invalid_fixture = false;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let content = std::fs::read_to_string(path).unwrap();
        let lines = content.lines().filter(|line| !line.is_empty());
        if name.contains("invalid") {
            saw_invalid_fixture = true;
            for line in lines {
                assert!(
                    !is_access_log(line),
                    "{name}: accepted a malformed line\n{line}"
                );
                checked_lines += 1;
            }
        } else if name.contains("json") {
            for line in lines {
                let record =
                    parse_json(line).unwrap_or_else(|error| panic!("{name}: {error}\n{line}"));
                let rendered = render_access_log(&record, AccessLogEncoding::Json);
                assert_eq!(parse_json(&rendered).unwrap(), record, "{name}");
                // Lines whose only `"-"` is `response_flags` (others missing are `null`) are in
                // the form we render, keys alphabetical: they come back byte for byte.
                let dashes_besides_flags = line
                    .replace("\"response_flags\":\"-\"", "")
                    .contains(":\"-\"");
                if !dashes_besides_flags {
                    assert_eq!(rendered, line, "{name}");
                }
                checked_lines += 1;
            }
        } else if name.contains("container") {
            let mut joiner = PartialJoiner::new(256 * 1024);
            for line in lines {
                let cri = parse_cri_line(line.as_bytes())
                    .unwrap_or_else(|error| panic!("{name}: {error}\n{line}"));
                let joined = joiner.push(cri).expect("captures hold only F lines");
                let message = std::str::from_utf8(&joined.message).unwrap();
                assert_text_round_trips(message, &name);
                checked_lines += 1;
            }
        } else {
            for line in lines {
                assert_text_round_trips(line, &name);
                checked_lines += 1;
            }
        }
    }
    assert!(saw_invalid_fixture, "the malformed-line capture is missing");
    eprintln!(
        "checked {checked_lines} reference lines in {} files",
        files.len()
    );
    assert!(checked_lines >= 40);
}
