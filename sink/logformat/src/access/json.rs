//! Istio's default JSON access-log line (`EnvoyJSONLogFormatIstio`): one object whose keys are the
//! TEXT format's fields. Numbers for `response_code`, `bytes_*` and `duration`, a string for
//! `upstream_service_time`, `null` for missing values. Owns parsing such a line into an
//! [`AccessRecord`] and rendering one (keys in alphabetical order, as older Envoys print them).

use serde_json::{Map, Value};

use super::record::{dash_to_none, AccessRecord};
use super::{AccessLogEncoding, AccessLogError};
use crate::time::{parse_rfc3339_nanos, write_rfc3339_millis};

/// Keys that must be present (possibly `null`) for an object to count as an access log; the rest
/// of Istio's keys may be absent and then read as missing.
const REQUIRED_KEYS: [&str; 9] = [
    "start_time",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration",
];

/// Parses one JSON access-log line. Unknown keys are ignored; `"-"` and `null` both read as missing.
pub fn parse_json(line: &str) -> Result<AccessRecord, AccessLogError> {
    let object: Map<String, Value> =
        serde_json::from_str(line).map_err(|_| error("line", "is not a JSON object"))?;
    if let Some(missing) = REQUIRED_KEYS.iter().find(|key| !object.contains_key(**key)) {
        return Err(error(missing, "is absent"));
    }
    let fields = Fields { object: &object };

    let start_time = fields
        .string("start_time")?
        .ok_or_else(|| error("start_time", "is missing"))?;
    let start_time_ns = parse_rfc3339_nanos(start_time.as_bytes())
        .map_err(|_| error("start_time", "is not an RFC 3339 timestamp"))?;
    let response_code = fields
        .number("response_code")?
        .ok_or_else(|| error("response_code", "is missing"))?;
    let response_code =
        u32::try_from(response_code).map_err(|_| error("response_code", "is out of range"))?;

    Ok(AccessRecord {
        start_time_ns,
        method: fields.string("method")?,
        path: fields.string("path")?,
        protocol: fields.string("protocol")?,
        response_code,
        response_flags: fields.string("response_flags")?,
        response_code_details: fields.string("response_code_details")?,
        connection_termination_details: fields.string("connection_termination_details")?,
        upstream_transport_failure_reason: fields.string("upstream_transport_failure_reason")?,
        bytes_received: fields.number("bytes_received")?.unwrap_or(0),
        bytes_sent: fields.number("bytes_sent")?.unwrap_or(0),
        duration_ms: fields.number("duration")?,
        upstream_service_time: fields.string_or_number("upstream_service_time")?,
        x_forwarded_for: fields.string("x_forwarded_for")?,
        user_agent: fields.string("user_agent")?,
        request_id: fields.string("request_id")?,
        authority: fields.string("authority")?,
        upstream_host: fields.string("upstream_host")?,
        upstream_cluster: fields.string("upstream_cluster")?,
        upstream_local_address: fields.string("upstream_local_address")?,
        downstream_local_address: fields.string("downstream_local_address")?,
        downstream_remote_address: fields.string("downstream_remote_address")?,
        requested_server_name: fields.string("requested_server_name")?,
        route_name: fields.string("route_name")?,
        source: None,
        destination: None,
    })
}

/// Appends the record as a compact JSON object with Istio's keys in alphabetical order, without a
/// trailing newline. Missing values are `null`, except `response_flags`, which Envoy always
/// prints (`"-"` when no flag is set).
pub fn write_json(record: &AccessRecord, out: &mut String) {
    let mut writer = ObjectWriter { out, first: true };
    writer.string("authority", &record.authority);
    writer.number("bytes_received", Some(record.bytes_received));
    writer.number("bytes_sent", Some(record.bytes_sent));
    writer.string(
        "connection_termination_details",
        &record.connection_termination_details,
    );
    writer.string("downstream_local_address", &record.downstream_local_address);
    writer.string(
        "downstream_remote_address",
        &record.downstream_remote_address,
    );
    writer.number("duration", record.duration_ms);
    writer.string("method", &record.method);
    writer.string("path", &record.path);
    writer.string("protocol", &record.protocol);
    writer.string("request_id", &record.request_id);
    writer.string("requested_server_name", &record.requested_server_name);
    writer.number("response_code", Some(u64::from(record.response_code)));
    writer.string("response_code_details", &record.response_code_details);
    let flags = Some(record.response_flags.clone().unwrap_or_else(|| "-".into()));
    writer.string("response_flags", &flags);
    writer.string("route_name", &record.route_name);
    let mut start_time = String::with_capacity(24);
    write_rfc3339_millis(record.start_time_ns, &mut start_time);
    writer.string("start_time", &Some(start_time));
    writer.string("upstream_cluster", &record.upstream_cluster);
    writer.string("upstream_host", &record.upstream_host);
    writer.string("upstream_local_address", &record.upstream_local_address);
    writer.string("upstream_service_time", &record.upstream_service_time);
    writer.string(
        "upstream_transport_failure_reason",
        &record.upstream_transport_failure_reason,
    );
    writer.string("user_agent", &record.user_agent);
    writer.string("x_forwarded_for", &record.x_forwarded_for);
    writer.out.push('}');
}

fn error(field: &'static str, problem: &'static str) -> AccessLogError {
    AccessLogError::Field {
        encoding: AccessLogEncoding::Json,
        field,
        problem,
    }
}

/// Typed reads of one parsed object; an absent key reads as missing.
struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn string(&self, key: &'static str) -> Result<Option<String>, AccessLogError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(dash_to_none(text)),
            Some(_) => Err(error(key, "is not a string")),
        }
    }

    fn number(&self, key: &'static str) -> Result<Option<u64>, AccessLogError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .map(Some)
                .ok_or_else(|| error(key, "is not a non-negative integer")),
            Some(_) => Err(error(key, "is not a number")),
        }
    }

    /// Envoy prints header-derived values as strings; a custom format may make them numbers.
    fn string_or_number(&self, key: &'static str) -> Result<Option<String>, AccessLogError> {
        match self.object.get(key) {
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            _ => self.string(key),
        }
    }
}

/// Writes `"key":value` members of one JSON object.
struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl ObjectWriter<'_> {
    fn key(&mut self, key: &str) {
        self.out.push(if self.first { '{' } else { ',' });
        self.first = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    fn string(&mut self, key: &str, value: &Option<String>) {
        self.key(key);
        match value {
            Some(value) => push_json_string(self.out, value),
            None => self.out.push_str("null"),
        }
    }

    fn number(&mut self, key: &str, value: Option<u64>) {
        self.key(key);
        match value {
            Some(value) => self.out.push_str(&value.to_string()),
            None => self.out.push_str("null"),
        }
    }
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const INBOUND: &str = r#"{"authority":"orders:8080","bytes_received":0,"bytes_sent":1291,"connection_termination_details":null,"downstream_local_address":"10.42.3.17:8080","downstream_remote_address":"10.42.1.9:40112","duration":12,"method":"GET","path":"/api/v1/orders/7","protocol":"HTTP/1.1","request_id":"6f1c2f0e-0b8c-9b51-8a3e-2a1d5b0e9f11","requested_server_name":"outbound_.8080_._.orders.shop.svc.cluster.local","response_code":200,"response_code_details":"via_upstream","response_flags":"-","route_name":"default","start_time":"2023-03-14T08:15:42.119Z","upstream_cluster":"inbound|8080||","upstream_host":"10.42.3.17:8080","upstream_local_address":"127.0.0.6:45019","upstream_service_time":"11","upstream_transport_failure_reason":null,"user_agent":"okhttp/4.9.3","x_forwarded_for":null}"#;

    #[test]
    fn parses_typed_fields() {
        let record = parse_json(INBOUND).unwrap();
        assert_eq!(record.response_code, 200);
        assert_eq!(record.duration_ms, Some(12));
        assert_eq!(record.bytes_sent, 1291);
        assert_eq!(record.upstream_service_time.as_deref(), Some("11"));
        assert_eq!(record.response_flags, None);
        assert_eq!(record.x_forwarded_for, None);
        assert_eq!(record.upstream_cluster.as_deref(), Some("inbound|8080||"));
        assert_eq!(record.start_time_text(), "2023-03-14T08:15:42.119Z");
    }

    #[test]
    fn renders_alphabetical_object_byte_for_byte() {
        let mut rendered = String::new();
        write_json(&parse_json(INBOUND).unwrap(), &mut rendered);
        assert_eq!(rendered, INBOUND);
    }

    #[test]
    fn renders_missing_values_as_null_and_escapes_strings() {
        let record = AccessRecord {
            user_agent: Some("quote\" backslash\\ tab\t".into()),
            ..AccessRecord::default()
        };
        let mut rendered = String::new();
        write_json(&record, &mut rendered);
        let value: Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(value["user_agent"], "quote\" backslash\\ tab\t");
        assert_eq!(value["duration"], Value::Null);
        assert_eq!(value["upstream_service_time"], Value::Null);
        assert_eq!(value["response_flags"], "-");
        assert_eq!(value["response_code"], 0);
        assert_eq!(value.as_object().unwrap().len(), 24);
        assert_eq!(parse_json(&rendered).unwrap(), record);
    }

    #[test]
    fn rejects_objects_that_are_not_access_logs() {
        assert_eq!(
            parse_json(r#"{"level":"info","msg":"started"}"#),
            Err(error("start_time", "is absent"))
        );
        let wrong_type = INBOUND.replace(r#""response_code":200"#, r#""response_code":"200""#);
        assert_eq!(
            parse_json(&wrong_type),
            Err(error("response_code", "is not a number"))
        );
        assert!(parse_json("{not json").is_err());
    }
}
