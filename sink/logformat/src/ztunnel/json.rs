//! ztunnel's JSON line (`IstioJsonFormat` in istio/ztunnel `src/telemetry.rs`): one object with
//! `level`, `time`, `scope` (the full target), `message`, then the event's fields under their
//! dotted names (`"src.addr"`), integers as numbers and everything else as strings, then one
//! object per active span. Spans are not kept (connection records carry none).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{
    is_display_field, FieldValue, ZtunnelLogError, ZtunnelRecord, ACCESS_TARGET, HEADER_KEYS,
    LEVELS,
};
use crate::access::AccessLogEncoding;
use crate::time::parse_rfc3339_nanos;

/// A JSON object with its keys in the order written (serde_json's map sorts them).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(OrderedObject(entries))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Parses one JSON line of scope `access`.
pub fn parse_ztunnel_json(line: &str) -> Result<ZtunnelRecord, ZtunnelLogError> {
    let OrderedObject(entries) =
        serde_json::from_str(line).map_err(|_| malformed("not a JSON object"))?;
    let header = |key: &str| -> Result<String, ZtunnelLogError> {
        match entries.iter().find(|(name, _)| name == key) {
            Some((_, Value::String(s))) => Ok(s.clone()),
            _ => Err(malformed(
                "level, time, scope or message is absent or not a string",
            )),
        }
    };
    let target = header("scope")?;
    if target != ACCESS_TARGET {
        return Err(ZtunnelLogError::NotAccess);
    }
    let time = header("time")?;
    if parse_rfc3339_nanos(time.as_bytes()).is_err() {
        return Err(malformed("the time is not an RFC 3339 timestamp"));
    }
    let level = header("level")?;
    if !LEVELS.contains(&level.as_str()) {
        return Err(malformed("the level is not a lowercase tracing level"));
    }
    let fields = entries
        .iter()
        .filter(|(name, _)| !HEADER_KEYS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.clone(), field_value(name, value)?)))
        .collect();
    Ok(ZtunnelRecord {
        time,
        level,
        target,
        message: header("message")?,
        fields,
    })
}

/// A field's value; `None` for spans (objects), arrays and `null`.
fn field_value(name: &str, value: &Value) -> Option<FieldValue> {
    match value {
        Value::String(s) if is_display_field(name) => Some(FieldValue::Bare(s.clone())),
        Value::String(s) => Some(FieldValue::Quoted(s.clone())),
        Value::Number(n) => Some(FieldValue::Number(n.to_string())),
        Value::Bool(b) => Some(FieldValue::Bare(b.to_string())),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Renders a record as ztunnel's JSON line, without the newline.
pub fn write_ztunnel_json(record: &ZtunnelRecord, out: &mut String) {
    out.push('{');
    let mut put = |key: &str, value: &Value| {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&Value::String(key.to_owned()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    };
    put("level", &Value::String(record.level.clone()));
    put("time", &Value::String(record.time.clone()));
    let target = record.target.split(':').next().unwrap_or_default();
    put("scope", &Value::String(target.to_owned()));
    put("message", &Value::String(record.message.clone()));
    for (name, value) in &record.fields {
        let json = match value {
            FieldValue::Number(n) => serde_json::from_str::<serde_json::Number>(n)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(n.clone())),
            FieldValue::Quoted(s) | FieldValue::Bare(s) => Value::String(s.clone()),
        };
        put(name, &json);
    }
    out.push('}');
}

fn malformed(problem: &'static str) -> ZtunnelLogError {
    ZtunnelLogError::Malformed {
        encoding: AccessLogEncoding::Json,
        problem,
    }
}
