//! Properties as Envoy serves them to `proxy_get_property`: a path (parts joined by NUL) mapped
//! to typed bytes — strings raw, integers 8-byte little-endian, messages as protobuf bytes.
//!
//! Owns the typing and the phase in which a stream property becomes visible; it does not decide
//! what a mesh looks like (the simulation fills the values).

use std::collections::BTreeMap;

/// When a per-stream property becomes readable (Envoy fills `response.*` only once a response
/// exists, and sizes/durations at the end of the stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// From the request headers on.
    #[default]
    Request,
    /// Once the response headers have been seen.
    Response,
    /// In the access-log phase (`on_log`) only.
    Log,
}

/// A property's bytes, typed the way Envoy encodes them.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyValue {
    /// Strings and bytes are returned as-is.
    String(String),
    /// int64 as 8 bytes little-endian.
    Int(i64),
    /// uint64 as 8 bytes little-endian.
    Uint(u64),
    /// Serialized messages (protobuf bytes).
    Bytes(Vec<u8>),
}

impl PropertyValue {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PropertyValue::String(s) => s.as_bytes().to_vec(),
            PropertyValue::Int(i) => i.to_le_bytes().to_vec(),
            PropertyValue::Uint(u) => u.to_le_bytes().to_vec(),
            PropertyValue::Bytes(b) => b.clone(),
        }
    }
}

/// Joins path parts as the wire does (NUL-separated).
pub fn path_key(parts: &[&str]) -> String {
    parts.join("\0")
}

/// A set of properties keyed by path, each with the phase it appears in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    entries: BTreeMap<String, (PropertyValue, Phase)>,
}

impl Properties {
    pub fn new() -> Properties {
        Properties::default()
    }

    /// Sets a property visible from `phase` on.
    pub fn set(&mut self, parts: &[&str], value: PropertyValue, phase: Phase) -> &mut Self {
        self.entries.insert(path_key(parts), (value, phase));
        self
    }

    pub fn set_string(&mut self, parts: &[&str], value: &str, phase: Phase) -> &mut Self {
        self.set(parts, PropertyValue::String(value.to_string()), phase)
    }

    pub fn set_int(&mut self, parts: &[&str], value: i64, phase: Phase) -> &mut Self {
        self.set(parts, PropertyValue::Int(value), phase)
    }

    /// Sets a property from a raw wire path (what `proxy_set_property` receives).
    pub fn set_raw(&mut self, key: &str, value: Vec<u8>, phase: Phase) {
        self.entries
            .insert(key.to_string(), (PropertyValue::Bytes(value), phase));
    }

    /// The value of a wire path if it is visible in `phase`.
    pub fn lookup(&self, key: &str, phase: Phase) -> Option<Vec<u8>> {
        self.entries
            .get(key)
            .filter(|(_, visible_from)| *visible_from <= phase)
            .map(|(value, _)| value.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_like_envoy_and_respect_phases() {
        let mut props = Properties::new();
        props
            .set_int(&["response", "code"], 503, Phase::Response)
            .set_string(&["xds", "cluster_name"], "outbound|9080||a", Phase::Request)
            .set(
                &["response", "flags"],
                PropertyValue::Uint(0x20),
                Phase::Response,
            );
        let code = path_key(&["response", "code"]);
        assert_eq!(props.lookup(&code, Phase::Request), None);
        assert_eq!(
            props.lookup(&code, Phase::Log).unwrap(),
            503i64.to_le_bytes().to_vec()
        );
        assert_eq!(
            props
                .lookup(&path_key(&["xds", "cluster_name"]), Phase::Request)
                .unwrap(),
            b"outbound|9080||a".to_vec()
        );
        assert_eq!(
            props
                .lookup(&path_key(&["response", "flags"]), Phase::Log)
                .unwrap()
                .len(),
            8
        );
    }
}
