//! The shape every config-loading error must have, shared by the config property tests and the
//! `config` fuzz target: loading never panics (the callers run it), and every error says where
//! the problem is. A YAML syntax error carries its line and column, or is one of the
//! document-level YAML errors that have none; every other error starts with the key path it is
//! about (`remote_write[0].url: ...`), or is a document-level error naming the key in backquotes.
//! It checks the shape of errors only, never which documents are valid.

use meshtap_sink::config::ConfigError;
use meshtap_sink::SinkConfig;

/// YAML errors about the document as a whole, which serde_yaml reports without a position.
const DOCUMENT_LEVEL_YAML_ERRORS: [&str; 7] = [
    "more than one document",
    "repetition limit exceeded",
    "for merging",
    "tagged value in merge",
    "empty YAML tag",
    "EOF while parsing",
    "failed to parse YAML number",
];

/// Errors of the document's root, where there is no key path to name. `?: ` is a top-level key
/// that is itself a map or a list (YAML's `? ` complex keys), which has no spelling to name.
const ROOT_ERRORS: [&str; 5] = [
    "the config must be a map of keys",
    "unknown field `",
    "missing field `",
    "invalid type: ",
    "?: invalid type: ",
];

/// Environment of the loads: the variables the example config and the README's blocks need
/// (those without a default), two more for expansion into numbers and URLs, nothing else.
pub fn lookup(var: &str) -> Option<String> {
    match var {
        "MESHTAP_INGEST_TOKEN" | "MIMIR_PASSWORD" | "XSCALER_TOKEN" => Some("s3cret".into()),
        "XSCALER_TENANT_ID" => Some("tenant-1".into()),
        "POD_NAME" => Some("meshtap-sink-0".into()),
        "SET_NUMBER" => Some("5".into()),
        "SET_URL" => Some("http://127.0.0.1:9009/api/v1/push".into()),
        _ => None,
    }
}

/// Loads `text` and checks the error, if any. Returns whether the document was accepted.
///
/// A document whose root is a scalar or a list, or that holds a key with no spelling (empty,
/// null, tagged), has no key to name; its error is only required to exist (the loader reports `${VAR}` failures in such a root with an empty path, see
/// `config_properties::a_scalar_document_names_the_document`).
pub fn load_and_check(text: &str) -> bool {
    match SinkConfig::from_yaml(text, &lookup) {
        Ok(_) => true,
        Err(err) => {
            if !root_is_scalar_or_list(text) && !has_unspellable_key(text) {
                check_error(&err, text);
            }
            false
        }
    }
}

fn has_unspellable_key(text: &str) -> bool {
    fn walk(value: &serde_yaml::Value) -> bool {
        match value {
            serde_yaml::Value::Mapping(map) => map.iter().any(|(key, item)| {
                matches!(key.as_str(), Some("") | None)
                    && !matches!(
                        key,
                        serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_)
                    )
                    || walk(item)
            }),
            serde_yaml::Value::Sequence(items) => items.iter().any(walk),
            serde_yaml::Value::Tagged(tagged) => walk(&tagged.value),
            _ => false,
        }
    }
    serde_yaml::from_str::<serde_yaml::Value>(text).is_ok_and(|tree| walk(&tree))
}

fn root_is_scalar_or_list(text: &str) -> bool {
    matches!(
        serde_yaml::from_str::<serde_yaml::Value>(text),
        Ok(serde_yaml::Value::String(_)
            | serde_yaml::Value::Number(_)
            | serde_yaml::Value::Bool(_)
            | serde_yaml::Value::Sequence(_)
            | serde_yaml::Value::Tagged(_))
    )
}

/// Panics when `err` does not say where in `text` the problem is.
pub fn check_error(err: &ConfigError, text: &str) {
    let message = err.to_string();
    match err {
        ConfigError::Yaml(yaml) => assert!(
            yaml.location().is_some()
                || DOCUMENT_LEVEL_YAML_ERRORS
                    .iter()
                    .any(|known| message.contains(known)),
            "YAML error without a position: {message:?}"
        ),
        ConfigError::Expand(_) | ConfigError::Invalid(_) => assert!(
            starts_with_key_path(&message, text)
                || ROOT_ERRORS.iter().any(|e| message.starts_with(e)),
            "config error names no key path: {message:?}"
        ),
        ConfigError::Empty => assert!(
            serde_yaml::from_str::<serde_yaml::Value>(text)
                .is_ok_and(|v| v.is_null() || v.as_mapping().is_some_and(|m| m.is_empty())),
            "a document with keys refused as empty: {text:?}"
        ),
        ConfigError::Read { .. } => panic!("loading a document read a file: {message:?}"),
    }
}

/// A path before the first `: ` whose first key is a plain word, or is written in the
/// document as it stands in the path (a misspelt top-level key is named as written; later
/// segments may be map keys of any spelling, such as label names); or an unknown key named as
/// the path and in backquotes.
fn starts_with_key_path(message: &str, text: &str) -> bool {
    let Some((path, rest)) = message.split_once(": ") else {
        return false;
    };
    // A key may itself hold `.` or `[`: take its first non-empty piece.
    let first = path.split(['.', '[']).find(|s| !s.is_empty()).unwrap_or("");
    // A plain key, or one that is not a string, spelt as YAML writes it (`1`, `-16`, `true`).
    let is_plain_key = !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'));
    // A tagged key (`!tag key`) is spelt with its tag percent-encoded, unlike the document.
    is_plain_key
        || first.starts_with('!')
        || !path.is_empty() && (text.contains(first) || text.contains(path))
        || rest.starts_with(&format!("unknown field `{path}`"))
}
