//! Hand-declared prost messages for the Envoy and Google protobuf types the filter reads:
//! `google.protobuf.Struct`/`Value`/`ListValue` (peer metadata) and
//! `envoy.config.core.v3.Metadata` (cluster and endpoint metadata).
//!
//! Only the fields the filter needs are declared; prost skips the others. This module decodes
//! and offers typed accessors; it must not interpret Istio semantics (see [`crate::record::peer`]).

use std::collections::BTreeMap;

/// `google.protobuf.Struct`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Struct {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, Value>,
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Value {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    pub kind: Option<Kind>,
}

/// `google.protobuf.Value.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Kind {
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(Struct),
    #[prost(message, tag = "6")]
    List(ListValue),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// `envoy.config.core.v3.Metadata` (only `filter_metadata`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Metadata {
    #[prost(btree_map = "string, message", tag = "1")]
    pub filter_metadata: BTreeMap<String, Struct>,
}

impl Struct {
    /// The string value of `key`, if present and a string.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        match self.fields.get(key)?.kind.as_ref()? {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The struct value of `key`, if present and a struct.
    pub(crate) fn sub(&self, key: &str) -> Option<&Struct> {
        match self.fields.get(key)?.kind.as_ref()? {
            Kind::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The list value of `key`, if present and a list.
    pub(crate) fn list(&self, key: &str) -> Option<&[Value]> {
        match self.fields.get(key)?.kind.as_ref()? {
            Kind::List(l) => Some(&l.values),
            _ => None,
        }
    }
}

impl Value {
    pub(crate) fn as_struct(&self) -> Option<&Struct> {
        match self.kind.as_ref()? {
            Kind::Struct(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod build {
    //! Builders for test fixtures.
    use super::*;

    pub(crate) fn string(s: &str) -> Value {
        Value {
            kind: Some(Kind::String(s.to_string())),
        }
    }

    pub(crate) fn object(pairs: &[(&str, Value)]) -> Struct {
        Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    pub(crate) fn nested(s: Struct) -> Value {
        Value {
            kind: Some(Kind::Struct(s)),
        }
    }

    pub(crate) fn list(values: Vec<Value>) -> Value {
        Value {
            kind: Some(Kind::List(ListValue { values })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use prost::Message;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn metadata_round_trips_with_nested_lists() {
        let services = list(vec![nested(object(&[
            ("host", string("ratings.default.svc.cluster.local")),
            ("name", string("ratings")),
        ]))]);
        let md = Metadata {
            filter_metadata: [("istio".to_string(), object(&[("services", services)]))].into(),
        };
        let back = Metadata::decode(md.encode_to_vec().as_slice()).unwrap();
        let istio = &back.filter_metadata["istio"];
        let first = istio.list("services").unwrap()[0].as_struct().unwrap();
        assert_eq!(first.str("name"), Some("ratings"));
        assert_eq!(first.str("namespace"), None);
        assert_eq!(istio.str("services"), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Struct::decode(&[0x0a, 0xff, 0xff][..]).is_err());
        assert!(Metadata::decode(&[0x0a][..]).is_err());
    }
}
