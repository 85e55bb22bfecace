//! ztunnel's connection records (Istio ambient mode's per-node L4 proxy): the events its
//! `access` tracing target writes (`connection complete`, `connection opened`, `connection
//! failed`; istio/ztunnel `src/proxy/metrics.rs`, `ConnectionResult::record_internal` and
//! `log_early_deny`) in its two line encodings, `IstioFormat` text (`text`) and
//! `IstioJsonFormat` JSON (`json`) from `src/telemetry.rs`.
//!
//! Owns the record, choosing the encoding of a line and the record's export as Loki structured
//! metadata. Lines of other targets (`xds::client`, `inpod`, …) are reported as not access
//! records, never guessed at.

mod json;
mod text;

pub use json::{parse_ztunnel_json, write_ztunnel_json};
pub use text::{parse_ztunnel_text, write_ztunnel_text};

use thiserror::Error;

use crate::access::AccessLogEncoding;

/// The tracing target of ztunnel's connection records.
pub const ACCESS_TARGET: &str = "access";

/// The keys ztunnel's JSON form writes before the event's fields.
const HEADER_KEYS: [&str; 4] = ["level", "time", "scope", "message"];

/// tracing's levels as ztunnel prints them (lowercase).
const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

/// Fields ztunnel records with `%` (Display): bare in the text form, strings in JSON.
const DISPLAY_FIELDS: [&str; 3] = ["src.addr", "dst.addr", "dst.hbone_addr"];

/// One field value, as ztunnel's tracing visitors write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A string (`record_str`, `?`): Rust-`Debug` quoted in text, a JSON string.
    Quoted(String),
    /// A `%` Display value such as an address: bare in text, a JSON string.
    Bare(String),
    /// An integer (`record_u64`): bare in text, a JSON number; kept as written.
    Number(String),
}

impl FieldValue {
    /// The value without quoting.
    pub fn as_str(&self) -> &str {
        match self {
            FieldValue::Quoted(s) | FieldValue::Bare(s) | FieldValue::Number(s) => s,
        }
    }

    /// The value without quoting, owned.
    pub fn into_string(self) -> String {
        match self {
            FieldValue::Quoted(s) | FieldValue::Bare(s) | FieldValue::Number(s) => s,
        }
    }
}

/// One ztunnel log event of target `access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZtunnelRecord {
    /// As written: RFC 3339 UTC with microseconds (`2026-09-21T14:03:17.482913Z`).
    pub time: String,
    /// Lowercase: `info` (a completed connection), `error` (it failed), `warn`, `debug`.
    pub level: String,
    /// The target as written: `access`, in text possibly followed by `:span{…}` scopes.
    pub target: String,
    /// `connection complete`, `connection opened`, `connection failed`.
    pub message: String,
    /// The event's fields in the order written (`src.addr`, … `duration`, `error`).
    pub fields: Vec<(String, FieldValue)>,
}

/// Why a line is not a ztunnel connection record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ZtunnelLogError {
    #[error("not a ztunnel log line: starts with neither a timestamp (text) nor `{{` (JSON)")]
    UnknownShape,
    #[error("a ztunnel log line of another target than `access`")]
    NotAccess,
    #[error("not a ztunnel {encoding:?} log line: {problem}")]
    Malformed {
        encoding: AccessLogEncoding,
        problem: &'static str,
    },
}

/// Parses a line in either encoding, choosing by its first byte. A trailing newline is ignored.
pub fn parse_ztunnel_access_log(line: &str) -> Result<ZtunnelRecord, ZtunnelLogError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    match line.as_bytes().first() {
        Some(b'{') => parse_ztunnel_json(line),
        Some(b'0'..=b'9') => parse_ztunnel_text(line),
        _ => Err(ZtunnelLogError::UnknownShape),
    }
}

/// Renders a record in the given encoding, without a trailing newline.
pub fn render_ztunnel_access_log(record: &ZtunnelRecord, encoding: AccessLogEncoding) -> String {
    let mut out = String::with_capacity(768);
    match encoding {
        AccessLogEncoding::Text => write_ztunnel_text(record, &mut out),
        AccessLogEncoding::Json => write_ztunnel_json(record, &mut out),
    }
    out
}

/// Whether ztunnel writes the field with `%` (bare in text).
fn is_display_field(name: &str) -> bool {
    DISPLAY_FIELDS.contains(&name)
}

/// The structured-metadata name of a field: `.` and every other character Loki refuses in a
/// name become `_` (`src.addr` → `src_addr`); a leading digit gets a `_` before it.
pub fn metadata_name(field: &str) -> String {
    let mut name: String = field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

impl ZtunnelRecord {
    /// `level`, `message`, then every field with a non-empty value under its
    /// [`metadata_name`] (`src_workload`, `dst_service`, `direction`, `bytes_sent`, `error`, …).
    /// The time stays in the line (the entry's timestamp is the CRI write time).
    pub fn into_structured_metadata(self) -> Vec<(String, String)> {
        let mut pairs = Vec::with_capacity(self.fields.len() + 2);
        pairs.push(("level".to_owned(), self.level));
        pairs.push(("message".to_owned(), self.message));
        pairs.extend(
            self.fields
                .into_iter()
                .map(|(name, value)| (metadata_name(&name), value.into_string())),
        );
        pairs.retain(|(_, value)| !value.is_empty());
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_the_first_byte() {
        assert_eq!(
            parse_ztunnel_access_log("[2023-03-14T08:15:42.118Z] \"GET / HTTP/1.1\" 200"),
            Err(ZtunnelLogError::UnknownShape)
        );
        assert_eq!(
            parse_ztunnel_access_log(
                "2026-09-21T14:03:16.911507Z\tinfo\txds::client:xds{id=1}\tStream established\t"
            ),
            Err(ZtunnelLogError::NotAccess)
        );
        assert_eq!(
            parse_ztunnel_access_log(
                r#"{"level":"info","time":"2026-09-21T14:03:16.911507Z","scope":"ztunnel::xds::client","message":"Stream established","xds":{"id":1}}"#
            ),
            Err(ZtunnelLogError::NotAccess)
        );
    }

    #[test]
    fn metadata_names_are_loki_names() {
        assert_eq!(metadata_name("src.addr"), "src_addr");
        assert_eq!(metadata_name("bytes_sent"), "bytes_sent");
        assert_eq!(metadata_name("1x"), "_1x");
        assert_eq!(metadata_name(""), "_");
    }
}
