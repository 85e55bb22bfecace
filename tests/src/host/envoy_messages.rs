//! Protobuf bytes Envoy and Istio hand to a filter: `envoy.config.core.v3.Metadata` (cluster and
//! endpoint metadata), the peer `google.protobuf.Struct` the metadata-exchange filter leaves in
//! filter state, the `x-envoy-peer-metadata` header, and Envoy's response-flag bits.
//!
//! Built with `prost-types`, independently of the filter's own decoding, so the tests check the
//! filter against a second implementation. Holds no mesh logic beyond these encodings.

use std::collections::BTreeMap;

use base64::Engine as _;
use prost::Message;
use prost_types::{value::Kind, ListValue, Struct, Value};

/// `envoy.config.core.v3.Metadata` (only `filter_metadata`, field 1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(btree_map = "string, message", tag = "1")]
    pub filter_metadata: BTreeMap<String, Struct>,
}

/// A string `Value`.
pub fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn struct_value(fields: BTreeMap<String, Value>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

fn string_struct(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), string_value(v)))
        .collect()
}

/// An Istio service entry of cluster metadata (`filter_metadata.istio.services[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRef {
    pub host: String,
    pub name: String,
    pub namespace: String,
}

/// Cluster metadata bytes as Istio sets them on a service's cluster.
pub fn cluster_metadata(services: &[ServiceRef]) -> Vec<u8> {
    let list = services
        .iter()
        .map(|s| {
            struct_value(string_struct(&[
                ("host", &s.host),
                ("name", &s.name),
                ("namespace", &s.namespace),
            ]))
        })
        .collect();
    let mut istio = BTreeMap::new();
    istio.insert(
        "services".to_string(),
        Value {
            kind: Some(Kind::ListValue(ListValue { values: list })),
        },
    );
    metadata_with_istio(istio)
}

/// Endpoint metadata bytes: `filter_metadata.istio.workload` =
/// `"workload;namespace;canonical-service;canonical-revision;cluster-id"`.
pub fn upstream_host_metadata(workload_field: &str) -> Vec<u8> {
    let mut istio = BTreeMap::new();
    istio.insert("workload".to_string(), string_value(workload_field));
    metadata_with_istio(istio)
}

fn metadata_with_istio(istio: BTreeMap<String, Value>) -> Vec<u8> {
    let mut filter_metadata = BTreeMap::new();
    filter_metadata.insert("istio".to_string(), Struct { fields: istio });
    Metadata { filter_metadata }.encode_to_vec()
}

/// What Istio knows about a workload, as peer metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerWorkload {
    /// Pod name.
    pub name: String,
    pub namespace: String,
    pub workload: String,
    /// Workload kind for the `type` key (`deployment`, `pod`, ...).
    pub workload_type: String,
    pub cluster: String,
    /// Canonical service.
    pub service: String,
    /// Canonical revision.
    pub revision: String,
    pub app: String,
    pub version: String,
    /// SPIFFE identity.
    pub identity: String,
}

/// The serialized `google.protobuf.Struct` Istio's metadata-exchange filter leaves in filter
/// state `downstream_peer` / `upstream_peer` (empty fields omitted).
pub fn peer_filter_state(peer: &PeerWorkload) -> Vec<u8> {
    let mut fields = string_struct(&[
        ("type", &peer.workload_type),
        ("workload", &peer.workload),
        ("name", &peer.name),
        ("cluster", &peer.cluster),
        ("namespace", &peer.namespace),
        ("service", &peer.service),
        ("revision", &peer.revision),
        ("app", &peer.app),
        ("version", &peer.version),
        ("identity", &peer.identity),
    ]);
    let labels = string_struct(&[
        ("app", &peer.app),
        ("version", &peer.version),
        ("service.istio.io/canonical-name", &peer.service),
        ("service.istio.io/canonical-revision", &peer.revision),
    ]);
    if !labels.is_empty() {
        fields.insert("labels".to_string(), struct_value(labels));
    }
    Struct { fields }.encode_to_vec()
}

/// The `x-envoy-peer-metadata` header value: standard base64 of a serialized Struct with
/// `NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, LABELS{...}`.
pub fn peer_metadata_header(peer: &PeerWorkload) -> String {
    let mut fields = string_struct(&[
        ("NAME", &peer.name),
        ("NAMESPACE", &peer.namespace),
        ("WORKLOAD_NAME", &peer.workload),
        ("CLUSTER_ID", &peer.cluster),
    ]);
    let labels = string_struct(&[
        ("app", &peer.app),
        ("version", &peer.version),
        ("service.istio.io/canonical-name", &peer.service),
        ("service.istio.io/canonical-revision", &peer.revision),
    ]);
    fields.insert("LABELS".to_string(), struct_value(labels));
    base64::engine::general_purpose::STANDARD.encode(Struct { fields }.encode_to_vec())
}

/// Envoy's response-flag short codes in `ResponseFlag` bit order (bit i = 1 << i).
pub const RESPONSE_FLAG_CODES: [&str; 27] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
];

/// Bitmask for a comma-separated short-code list (`"-"` or `""` = no flags).
pub fn response_flag_bits(codes: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for code in codes.split(',').map(str::trim) {
        if code.is_empty() || code == "-" {
            continue;
        }
        let index = RESPONSE_FLAG_CODES
            .iter()
            .position(|c| *c == code)
            .ok_or_else(|| format!("unknown Envoy response flag {code:?}"))?;
        bits |= 1 << index;
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_metadata_decodes_with_prost() {
        let bytes = cluster_metadata(&[ServiceRef {
            host: "reviews.default.svc.cluster.local".into(),
            name: "reviews".into(),
            namespace: "default".into(),
        }]);
        let decoded = Metadata::decode(bytes.as_slice()).unwrap();
        let istio = &decoded.filter_metadata["istio"];
        let Some(Kind::ListValue(list)) = &istio.fields["services"].kind else {
            panic!("services is not a list");
        };
        let Some(Kind::StructValue(service)) = &list.values[0].kind else {
            panic!("service is not a struct");
        };
        assert_eq!(service.fields["name"], string_value("reviews"));
    }

    #[test]
    fn response_flags_map_to_envoy_bits() {
        assert_eq!(response_flag_bits("-").unwrap(), 0);
        assert_eq!(response_flag_bits("UF,URX").unwrap(), 0x20 | 0x8000);
        assert_eq!(response_flag_bits("DC").unwrap(), 0x4000);
        assert_eq!(response_flag_bits("NR").unwrap(), 0x100);
        assert!(response_flag_bits("XX").is_err());
    }

    #[test]
    fn peer_header_is_base64_struct() {
        let peer = PeerWorkload {
            name: "p".into(),
            namespace: "ns".into(),
            workload: "w".into(),
            app: "a".into(),
            ..Default::default()
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(peer_metadata_header(&peer))
            .unwrap();
        let decoded = Struct::decode(raw.as_slice()).unwrap();
        assert_eq!(decoded.fields["WORKLOAD_NAME"], string_value("w"));
        assert!(!decoded.fields.contains_key("CLUSTER_ID"));
    }
}
