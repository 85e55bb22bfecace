//! Property tests of the config loader over untrusted documents: YAML-ish token soups and
//! mutated valid configs (the example config and the README's config blocks, with lines
//! deleted, duplicated, re-indented, or given odd values and unknown keys) never make loading
//! panic, and every error says where the problem is (`config_check`: a key path, or a YAML
//! position).

mod config_check;

use config_check::load_and_check;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../examples/sink.yaml");
const README: &str = include_str!("../README.md");

/// The valid documents the mutations start from: the example config, and the README's sink
/// config blocks (not the Kubernetes objects it shows) one by one and all together.
fn valid_documents() -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                if !block.contains("apiVersion:") {
                    blocks.push(std::mem::take(block));
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let all = blocks.concat();
    blocks.push(all);
    blocks.push(EXAMPLE.to_string());
    blocks
}

/// Values that are wrong, odd or borderline for most keys.
const ODD_VALUES: [&str; 24] = [
    "-1",
    "0",
    "\"\"",
    "[]",
    "{}",
    "1e400",
    "99999999999999999999",
    "~",
    "\"${UNSET_VAR}\"",
    "\"${SET_NUMBER}\"",
    "\"${SET_URL}\"",
    "\"${\"",
    "\"${1BAD}\"",
    "http://",
    "'http://exa mple:99999/'",
    "https://[::1",
    "-5s",
    "1KiB",
    "0s",
    "yes",
    "!!binary AA==",
    "*missing_anchor",
    "[a, {b: c}]",
    "\"\\u0000\"",
];

/// One edit of a document, applied to line `at` (modulo the line count).
#[derive(Clone, Debug)]
enum Mutation {
    Delete,
    Duplicate,
    Indent,
    Dedent,
    OddValue(usize),
    UnknownKey,
}

fn mutation() -> impl Strategy<Value = (prop::sample::Index, Mutation)> {
    let kind = prop_oneof![
        Just(Mutation::Delete),
        Just(Mutation::Duplicate),
        Just(Mutation::Indent),
        Just(Mutation::Dedent),
        (0..ODD_VALUES.len()).prop_map(Mutation::OddValue),
        Just(Mutation::UnknownKey),
    ];
    (any::<prop::sample::Index>(), kind)
}

fn mutate(document: &str, mutations: &[(prop::sample::Index, Mutation)]) -> String {
    let mut lines: Vec<String> = document.lines().map(str::to_owned).collect();
    for (at, mutation) in mutations {
        if lines.is_empty() {
            break;
        }
        let i = at.index(lines.len());
        let indent = lines[i].len() - lines[i].trim_start().len();
        match mutation {
            Mutation::Delete => {
                lines.remove(i);
            }
            Mutation::Duplicate => lines.insert(i, lines[i].clone()),
            Mutation::Indent => lines[i].insert_str(0, "  "),
            Mutation::Dedent => lines[i] = lines[i][indent.min(2)..].to_string(),
            Mutation::OddValue(v) => {
                if let Some((key, _)) = lines[i].split_once(": ") {
                    lines[i] = format!("{key}: {}", ODD_VALUES[*v]);
                }
            }
            Mutation::UnknownKey => lines.insert(i, format!("{}bogus_key: 1", " ".repeat(indent))),
        }
    }
    lines.join("\n")
}

/// Pieces of YAML and of the sink's keys and values.
fn yaml_token() -> impl Strategy<Value = String> {
    let keys = [
        "listen",
        "remote_write",
        "url",
        "name",
        "queue",
        "lanes",
        "spool",
        "dir",
        "max_bytes",
        "scrape",
        "jobs",
        "static_configs",
        "targets",
        "logs",
        "log_files",
        "ingest",
        "tokens",
        "view",
        "window",
        "shutdown_timeout",
        "external_labels",
        "headers",
        "basic_auth",
    ];
    prop_oneof![
        prop::sample::select(keys.to_vec()).prop_map(|k| format!("{k}: ")),
        prop::sample::select(ODD_VALUES.to_vec()).prop_map(str::to_owned),
        prop::sample::select(vec![
            "\n",
            "\n  ",
            "\n    ",
            "- ",
            "[",
            "]",
            "{",
            "}",
            ", ",
            ": ",
            "'",
            "\"",
            "&a ",
            "*a",
            "<<: ",
            "? ",
            "---\n",
            "#",
            "\t",
            "1",
            "true",
            "http://127.0.0.1:9/x",
            "10s",
            "1GiB",
        ])
        .prop_map(str::to_owned),
        "[ -~]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn yaml_soups_never_panic_and_errors_say_where(tokens in prop::collection::vec(yaml_token(), 0..40)) {
        load_and_check(&tokens.concat());
    }

    #[test]
    fn mutated_configs_never_panic_and_errors_say_where(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let documents = valid_documents();
        let document = &documents[which.index(documents.len())];
        load_and_check(&mutate(document, &mutations));
    }
}

#[test]
fn the_starting_documents_load() {
    let documents = valid_documents();
    assert!(documents.len() >= 3, "README config blocks not found");
    for document in &documents {
        assert!(load_and_check(document), "refused:\n{document}");
    }
}

/// A document that is a single value is refused naming what the document is, not with an
/// empty key path.
#[test]
fn a_scalar_document_names_the_document() {
    let err = meshtap_sink::SinkConfig::from_yaml("\"${UNSET_VAR}\"", &config_check::lookup)
        .unwrap_err()
        .to_string();
    assert!(!err.starts_with(": "), "{err}");
}

/// A key that is not a string is named in the path as YAML writes it (it was left out, and the
/// error read `: environment variable UNSET_VAR is not set ...`).
#[test]
fn a_number_key_is_named_in_the_path() {
    for (document, path) in [
        ("1: \"${UNSET_VAR}\"", "1: "),
        (".3: \"NAN${:a\"", "0.3: "),
        ("view: {true: \"${UNSET_VAR}\"}", "view.true: "),
    ] {
        let err = meshtap_sink::SinkConfig::from_yaml(document, &config_check::lookup)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(path), "{document}: {err}");
    }
}
