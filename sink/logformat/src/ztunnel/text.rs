//! ztunnel's text line (`IstioFormat` in istio/ztunnel `src/telemetry.rs`):
//! `<time>\t<level>\t<target>[:<span>{…}]\t<message>\t<k=v> <k=v> …`. Strings are Rust-`Debug`
//! quoted (`src.workload="curl-5b549b49b8-mq2ws"`), Display values and integers bare
//! (`src.addr=10.244.1.12:51724`, `bytes_sent=86`); the message is always followed by a tab.

use std::fmt::Write as _;

use super::{FieldValue, ZtunnelLogError, ZtunnelRecord, ACCESS_TARGET, HEADER_KEYS, LEVELS};
use crate::access::AccessLogEncoding;
use crate::time::parse_rfc3339_nanos;

/// Parses one text line of target `access`.
pub fn parse_ztunnel_text(line: &str) -> Result<ZtunnelRecord, ZtunnelLogError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut columns = line.splitn(5, '\t');
    let mut next = |what| columns.next().ok_or_else(|| malformed(what));
    let time = next("fewer than five tab-separated columns")?;
    let level = next("fewer than five tab-separated columns")?;
    let target = next("fewer than five tab-separated columns")?;
    let message = next("fewer than five tab-separated columns")?;
    let fields = next("no tab after the message")?;
    if parse_rfc3339_nanos(time.as_bytes()).is_err() {
        return Err(malformed("the time is not an RFC 3339 timestamp"));
    }
    if !LEVELS.contains(&level) {
        return Err(malformed("the level is not a lowercase tracing level"));
    }
    if target.split(':').next() != Some(ACCESS_TARGET) {
        return Err(ZtunnelLogError::NotAccess);
    }
    Ok(ZtunnelRecord {
        time: time.to_owned(),
        level: level.to_owned(),
        target: target.to_owned(),
        message: message.to_owned(),
        fields: parse_fields(fields)?,
    })
}

/// `k=v` pairs separated by one space.
fn parse_fields(mut rest: &str) -> Result<Vec<(String, FieldValue)>, ZtunnelLogError> {
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("a field without `=`"))?;
        if name.is_empty() || name.contains([' ', '"']) || HEADER_KEYS.contains(&name) {
            return Err(malformed(
                "a field name is empty, holds a space or quote, or is a JSON header key",
            ));
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let (value, after) = unquote_debug(quoted)?;
            (FieldValue::Quoted(value), after)
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            let (token, after) = after.split_at(end);
            (bare_value(token)?, after)
        };
        fields.push((name.to_owned(), value));
        rest = match after.strip_prefix(' ') {
            Some(next) if !next.is_empty() => next,
            Some(_) => return Err(malformed("a trailing space after the last field")),
            None if after.is_empty() => after,
            None => return Err(malformed("no space between two fields")),
        };
    }
    Ok(fields)
}

/// A bare token: an integer (`itoa`) or a Display value.
fn bare_value(token: &str) -> Result<FieldValue, ZtunnelLogError> {
    if !is_bare_safe(token) {
        return Err(malformed("a bare value is empty or holds a line break"));
    }
    let digits = token.strip_prefix('-').unwrap_or(token);
    let integer = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && token != "-0"
        && token
            .parse::<i128>()
            .is_ok_and(|n| i64::try_from(n).is_ok() || u64::try_from(n).is_ok());
    Ok(if integer {
        FieldValue::Number(token.to_owned())
    } else {
        FieldValue::Bare(token.to_owned())
    })
}

/// Reads a Rust `Debug` string body up to its closing quote; returns it and what follows.
fn unquote_debug(body: &str) -> Result<(String, &str), ZtunnelLogError> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &body[at + 1..])),
            '\\' => value.push(match chars.next().map(|(_, c)| c) {
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('0') => '\0',
                Some(c @ ('\\' | '"' | '\'')) => c,
                Some('u') => unicode_escape(&mut chars)?,
                _ => return Err(malformed("an unknown escape in a quoted value")),
            }),
            c => value.push(c),
        }
    }
    Err(malformed("a quoted value without its closing quote"))
}

/// The `{hex}` of a `\u{…}` escape.
fn unicode_escape(chars: &mut std::str::CharIndices<'_>) -> Result<char, ZtunnelLogError> {
    let bad = || malformed("a bad \\u{…} escape in a quoted value");
    if chars.next().map(|(_, c)| c) != Some('{') {
        return Err(bad());
    }
    let mut hex = String::new();
    for (_, c) in chars.by_ref() {
        if c == '}' {
            let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
            return char::from_u32(code).ok_or_else(bad);
        }
        if hex.len() == 6 {
            return Err(bad());
        }
        hex.push(c);
    }
    Err(bad())
}

/// Renders a record as ztunnel's text line, without the newline.
pub fn write_ztunnel_text(record: &ZtunnelRecord, out: &mut String) {
    let _ = write!(
        out,
        "{}\t{}\t{}\t{}\t",
        record.time, record.level, record.target, record.message
    );
    for (index, (name, value)) in record.fields.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let _ = match value {
            FieldValue::Quoted(s) => write!(out, "{name}={s:?}"),
            FieldValue::Bare(s) | FieldValue::Number(s) if !is_bare_safe(s) => {
                write!(out, "{name}={s:?}")
            }
            FieldValue::Bare(s) | FieldValue::Number(s) => write!(out, "{name}={s}"),
        };
    }
}

/// Whether a value may be written bare and read back as itself (not empty, no leading quote, no
/// space or line break); others (only from JSON lines) are quoted instead.
fn is_bare_safe(value: &str) -> bool {
    !value.is_empty() && !value.starts_with('"') && !value.contains([' ', '\t', '\n', '\r'])
}

fn malformed(problem: &'static str) -> ZtunnelLogError {
    ZtunnelLogError::Malformed {
        encoding: AccessLogEncoding::Text,
        problem,
    }
}
