//! Envoy access logs in Istio's default formats: the structured record (`record`), the TEXT line
//! (`text`) and the JSON line (`json`), plus detection of which, if any, a container-log line is.
//! Lines that are not access logs (pilot-agent's and Envoy's own tab-separated logs, application
//! output) are reported as such, never guessed at.

mod json;
mod record;
mod text;

pub use json::{parse_json, write_json};
pub use record::{AccessRecord, PeerWorkload, METADATA_FIELDS};
pub use text::{parse_text, write_text};

use thiserror::Error;

/// The two encodings of Istio's default access log (`meshConfig.accessLogEncoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogEncoding {
    Text,
    Json,
}

/// Why a line is not an access log in Istio's default format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccessLogError {
    #[error("not an access log: line starts with neither `[` (TEXT) nor `{{` (JSON)")]
    UnknownShape,
    #[error("not an Istio {encoding:?} access log: `{field}` {problem}")]
    Field {
        encoding: AccessLogEncoding,
        field: &'static str,
        problem: &'static str,
    },
}

/// Parses a line in either encoding, choosing by its first byte. A trailing newline is ignored.
pub fn parse_access_log(line: &str) -> Result<AccessRecord, AccessLogError> {
    match line.as_bytes().first() {
        Some(b'[') => parse_text(line),
        Some(b'{') => parse_json(line),
        _ => Err(AccessLogError::UnknownShape),
    }
}

/// Whether the line parses as an Istio default TEXT or JSON access log.
pub fn is_access_log(line: &str) -> bool {
    parse_access_log(line).is_ok()
}

/// Renders a record in the given encoding, without a trailing newline.
pub fn render_access_log(record: &AccessRecord, encoding: AccessLogEncoding) -> String {
    let mut out = String::with_capacity(512);
    match encoding {
        AccessLogEncoding::Text => write_text(record, &mut out),
        AccessLogEncoding::Json => write_json(record, &mut out),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_first_byte_and_rejects_agent_logs() {
        assert_eq!(
            parse_access_log("2024-06-28T06:40:16.285918Z\tinfo\tEnvoy proxy is ready"),
            Err(AccessLogError::UnknownShape)
        );
        assert!(!is_access_log(""));
        assert!(!is_access_log(
            "[2024-06-28 06:40:16.285][15][info][main] starting"
        ));
        assert!(!is_access_log("{\"level\":\"info\",\"msg\":\"app log\"}"));
    }
}
