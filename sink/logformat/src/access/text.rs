//! Istio's default TEXT access-log line (`EnvoyTextLogFormat`):
//! `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
//! "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
//! %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
//! %REQUESTED_SERVER_NAME% %ROUTE_NAME%`. Owns parsing it into an [`AccessRecord`] and rendering a
//! record back, byte for byte; nothing else.

use super::record::{dash_to_none, AccessRecord};
use super::{AccessLogEncoding, AccessLogError};
use crate::time::{parse_rfc3339_nanos, write_rfc3339_millis};

/// Parses one TEXT access-log line (a trailing `\n` is ignored). The line must have exactly the
/// default format's fields; anything else is an error, not a partial record.
pub fn parse_text(line: &str) -> Result<AccessRecord, AccessLogError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut cursor = Cursor { rest: line };

    cursor.expect("[", "start_time", "must open with `[`")?;
    let start_time = cursor.until("] ", "start_time", "must close with `] `")?;
    let start_time_ns = parse_rfc3339_nanos(start_time.as_bytes())
        .map_err(|_| error("start_time", "is not an RFC 3339 timestamp"))?;

    let request = cursor.quoted("request")?;
    let (method, path, protocol) = split_request(request)?;

    let response_code = cursor
        .token("response_code")?
        .parse::<u32>()
        .map_err(|_| error("response_code", "is not a number"))?;
    let response_flags = dash_to_none(cursor.token("response_flags")?);
    let response_code_details = dash_to_none(cursor.token("response_code_details")?);
    let connection_termination_details =
        dash_to_none(cursor.token("connection_termination_details")?);
    let upstream_transport_failure_reason =
        dash_to_none(cursor.quoted("upstream_transport_failure_reason")?);
    let bytes_received = number(cursor.token("bytes_received")?, "bytes_received")?;
    let bytes_sent = number(cursor.token("bytes_sent")?, "bytes_sent")?;
    let duration_ms = match cursor.token("duration")? {
        "-" => None,
        value => Some(number(value, "duration")?),
    };
    let upstream_service_time = dash_to_none(cursor.token("upstream_service_time")?);
    let x_forwarded_for = dash_to_none(cursor.quoted("x_forwarded_for")?);
    let user_agent = dash_to_none(cursor.quoted("user_agent")?);
    let request_id = dash_to_none(cursor.quoted("request_id")?);
    let authority = dash_to_none(cursor.quoted("authority")?);
    let upstream_host = dash_to_none(cursor.quoted("upstream_host")?);
    let upstream_cluster = dash_to_none(cursor.token("upstream_cluster")?);
    let upstream_local_address = dash_to_none(cursor.token("upstream_local_address")?);
    let downstream_local_address = dash_to_none(cursor.token("downstream_local_address")?);
    let downstream_remote_address = dash_to_none(cursor.token("downstream_remote_address")?);
    let requested_server_name = dash_to_none(cursor.token("requested_server_name")?);
    let route_name = cursor.last_token("route_name")?;

    Ok(AccessRecord {
        start_time_ns,
        method,
        path,
        protocol,
        response_code,
        response_flags,
        response_code_details,
        connection_termination_details,
        upstream_transport_failure_reason,
        bytes_received,
        bytes_sent,
        duration_ms,
        upstream_service_time,
        x_forwarded_for,
        user_agent,
        request_id,
        authority,
        upstream_host,
        upstream_cluster,
        upstream_local_address,
        downstream_local_address,
        downstream_remote_address,
        requested_server_name,
        route_name: dash_to_none(route_name),
        source: None,
        destination: None,
    })
}

/// Appends the record as a TEXT line, without the trailing newline. Missing values print as `-`.
pub fn write_text(record: &AccessRecord, out: &mut String) {
    out.push('[');
    write_rfc3339_millis(record.start_time_ns, out);
    out.push_str("] \"");
    push_or_dash(out, &record.method);
    out.push(' ');
    push_or_dash(out, &record.path);
    out.push(' ');
    push_or_dash(out, &record.protocol);
    out.push_str("\" ");
    push_number(out, u64::from(record.response_code));
    out.push(' ');
    push_or_dash(out, &record.response_flags);
    out.push(' ');
    push_or_dash(out, &record.response_code_details);
    out.push(' ');
    push_or_dash(out, &record.connection_termination_details);
    out.push_str(" \"");
    push_or_dash(out, &record.upstream_transport_failure_reason);
    out.push_str("\" ");
    push_number(out, record.bytes_received);
    out.push(' ');
    push_number(out, record.bytes_sent);
    out.push(' ');
    match record.duration_ms {
        Some(duration) => push_number(out, duration),
        None => out.push('-'),
    }
    out.push(' ');
    push_or_dash(out, &record.upstream_service_time);
    for quoted in [
        &record.x_forwarded_for,
        &record.user_agent,
        &record.request_id,
        &record.authority,
        &record.upstream_host,
    ] {
        out.push_str(" \"");
        push_or_dash(out, quoted);
        out.push('"');
    }
    for token in [
        &record.upstream_cluster,
        &record.upstream_local_address,
        &record.downstream_local_address,
        &record.downstream_remote_address,
        &record.requested_server_name,
        &record.route_name,
    ] {
        out.push(' ');
        push_or_dash(out, token);
    }
}

fn push_or_dash(out: &mut String, value: &Option<String>) {
    match value.as_deref() {
        Some(value) if !value.is_empty() => out.push_str(value),
        _ => out.push('-'),
    }
}

fn push_number(out: &mut String, value: u64) {
    let mut digits = [0u8; 20];
    let mut index = digits.len();
    let mut rest = value;
    loop {
        index -= 1;
        digits[index] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[index..]).expect("ASCII digits"));
}

/// Method, path and protocol, each `None` when Envoy printed `-`.
type RequestParts = (Option<String>, Option<String>, Option<String>);

/// `METHOD PATH PROTOCOL`: the method has no space and the protocol is the last word, so a path
/// is whatever lies between. A request without a protocol is only valid when everything is `-`
/// (TCP); `GET /x -` is not a line Envoy writes.
fn split_request(request: &str) -> Result<RequestParts, AccessLogError> {
    let (method, rest) = request
        .split_once(' ')
        .ok_or_else(|| error("request", "is not `METHOD PATH PROTOCOL`"))?;
    let (path, protocol) = rest
        .rsplit_once(' ')
        .ok_or_else(|| error("request", "is not `METHOD PATH PROTOCOL`"))?;
    if method.is_empty() || path.is_empty() || protocol.is_empty() {
        return Err(error("request", "has an empty part"));
    }
    if protocol == "-" {
        if method != "-" || path != "-" {
            return Err(error("protocol", "is missing from an HTTP request"));
        }
    } else if !protocol.starts_with("HTTP/") {
        return Err(error("protocol", "is not HTTP/<version>"));
    }
    Ok((
        dash_to_none(method),
        dash_to_none(path),
        dash_to_none(protocol),
    ))
}

fn number(value: &str, field: &'static str) -> Result<u64, AccessLogError> {
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(error(field, "is not a number"));
    }
    value.parse().map_err(|_| error(field, "is not a number"))
}

fn error(field: &'static str, problem: &'static str) -> AccessLogError {
    AccessLogError::Field {
        encoding: AccessLogEncoding::Text,
        field,
        problem,
    }
}

/// Walks a TEXT line field by field; fields are separated by exactly one space.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn expect(
        &mut self,
        prefix: &str,
        field: &'static str,
        problem: &'static str,
    ) -> Result<(), AccessLogError> {
        self.rest = self
            .rest
            .strip_prefix(prefix)
            .ok_or_else(|| error(field, problem))?;
        Ok(())
    }

    /// Everything up to `terminator`, which is consumed.
    fn until(
        &mut self,
        terminator: &str,
        field: &'static str,
        problem: &'static str,
    ) -> Result<&'a str, AccessLogError> {
        let (value, rest) = self
            .rest
            .split_once(terminator)
            .ok_or_else(|| error(field, problem))?;
        self.rest = rest;
        Ok(value)
    }

    /// A non-empty, space-free word followed by a space.
    fn token(&mut self, field: &'static str) -> Result<&'a str, AccessLogError> {
        let (value, rest) = self
            .rest
            .split_once(' ')
            .ok_or_else(|| error(field, "is missing"))?;
        if value.is_empty() {
            return Err(error(field, "is empty"));
        }
        self.rest = rest;
        Ok(value)
    }

    /// The line's final word.
    fn last_token(&mut self, field: &'static str) -> Result<&'a str, AccessLogError> {
        let value = std::mem::take(&mut self.rest);
        if value.is_empty() || value.contains(' ') {
            return Err(error(field, "must be the last single word"));
        }
        Ok(value)
    }

    /// `"value"` followed by a space. Envoy does not escape quotes, so the value ends at the first
    /// `" ` sequence.
    fn quoted(&mut self, field: &'static str) -> Result<&'a str, AccessLogError> {
        self.expect("\"", field, "must be quoted")?;
        let bytes = self.rest.as_bytes();
        let mut from = 0;
        while let Some(offset) = self.rest[from..].find('"') {
            let quote = from + offset;
            if bytes.get(quote + 1) == Some(&b' ') {
                let value = &self.rest[..quote];
                self.rest = &self.rest[quote + 2..];
                return Ok(value);
            }
            from = quote + 1;
        }
        Err(error(field, "has no closing quote"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTBOUND: &str = "[2023-03-14T08:15:42.118Z] \"GET /api/v1/orders/7 HTTP/1.1\" 200 - via_upstream - \"-\" 0 1291 14 13 \"-\" \"okhttp/4.9.3\" \"6f1c2f0e-0b8c-9b51-8a3e-2a1d5b0e9f11\" \"orders:8080\" \"10.42.3.17:8080\" outbound|8080||orders.shop.svc.cluster.local 10.42.1.9:51234 10.96.14.2:8080 10.42.1.9:40112 - default";

    #[test]
    fn parses_every_field_of_an_outbound_line() {
        let record = parse_text(OUTBOUND).unwrap();
        assert_eq!(record.start_time_text(), "2023-03-14T08:15:42.118Z");
        assert_eq!(record.method.as_deref(), Some("GET"));
        assert_eq!(record.path.as_deref(), Some("/api/v1/orders/7"));
        assert_eq!(record.protocol.as_deref(), Some("HTTP/1.1"));
        assert_eq!(record.response_code, 200);
        assert_eq!(record.response_flags, None);
        assert_eq!(
            record.response_code_details.as_deref(),
            Some("via_upstream")
        );
        assert_eq!(record.connection_termination_details, None);
        assert_eq!(record.upstream_transport_failure_reason, None);
        assert_eq!((record.bytes_received, record.bytes_sent), (0, 1291));
        assert_eq!(record.duration_ms, Some(14));
        assert_eq!(record.upstream_service_time.as_deref(), Some("13"));
        assert_eq!(record.x_forwarded_for, None);
        assert_eq!(record.user_agent.as_deref(), Some("okhttp/4.9.3"));
        assert_eq!(
            record.request_id.as_deref(),
            Some("6f1c2f0e-0b8c-9b51-8a3e-2a1d5b0e9f11")
        );
        assert_eq!(record.authority.as_deref(), Some("orders:8080"));
        assert_eq!(record.upstream_host.as_deref(), Some("10.42.3.17:8080"));
        assert_eq!(
            record.upstream_cluster.as_deref(),
            Some("outbound|8080||orders.shop.svc.cluster.local")
        );
        assert_eq!(
            record.upstream_local_address.as_deref(),
            Some("10.42.1.9:51234")
        );
        assert_eq!(
            record.downstream_local_address.as_deref(),
            Some("10.96.14.2:8080")
        );
        assert_eq!(
            record.downstream_remote_address.as_deref(),
            Some("10.42.1.9:40112")
        );
        assert_eq!(record.requested_server_name, None);
        assert_eq!(record.route_name.as_deref(), Some("default"));
    }

    #[test]
    fn renders_back_byte_for_byte() {
        let mut rendered = String::new();
        write_text(&parse_text(OUTBOUND).unwrap(), &mut rendered);
        assert_eq!(rendered, OUTBOUND);
        let with_newline = format!("{OUTBOUND}\n");
        assert_eq!(parse_text(&with_newline), parse_text(OUTBOUND));
    }

    #[test]
    fn accepts_tcp_request_of_dashes() {
        let line = "[2023-03-14T08:15:42.118Z] \"- - -\" 0 - - - \"-\" 812 4410 1502 - \"-\" \"-\" \"-\" \"-\" \"93.184.215.14:443\" PassthroughCluster 10.42.1.9:51990 93.184.215.14:443 10.42.1.9:51988 example.org -";
        let record = parse_text(line).unwrap();
        assert_eq!(
            (record.method.clone(), record.protocol.clone()),
            (None, None)
        );
        assert_eq!(
            record.upstream_cluster.as_deref(),
            Some("PassthroughCluster")
        );
        assert_eq!(record.route_name, None);
        let mut rendered = String::new();
        write_text(&record, &mut rendered);
        assert_eq!(rendered, line);
    }

    #[test]
    fn rejects_broken_lines_naming_the_field() {
        let missing_protocol = OUTBOUND.replace("HTTP/1.1\"", "-\"");
        assert_eq!(
            parse_text(&missing_protocol),
            Err(error("protocol", "is missing from an HTTP request"))
        );
        let bad_code = OUTBOUND.replace("\" 200 -", "\" 2x0 -");
        assert_eq!(
            parse_text(&bad_code),
            Err(error("response_code", "is not a number"))
        );
        let extra_field = format!("{OUTBOUND} extra");
        assert!(parse_text(&extra_field).is_err());
        let truncated = &OUTBOUND[..OUTBOUND.len() - " default".len()];
        assert!(parse_text(truncated).is_err());
        assert!(parse_text("[not a time] \"GET / HTTP/1.1\"").is_err());
    }
}
