//! Workload identities the filter learns about: the peer of a request (from Istio's
//! metadata-exchange filter state, the `x-envoy-peer-metadata` header, or endpoint metadata) and
//! the services of an upstream cluster (cluster metadata).
//!
//! Owns decoding those encodings into plain [`PeerInfo`] / [`ClusterServices`] values. It must
//! not apply Istio's `unknown`/`latest` defaults; that is [`crate::record::labels`]' job.

use prost::Message;

use crate::record::protobuf::{Metadata, Struct};

/// What is known about a workload; empty strings mean "not known".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    pub workload: String,
    pub namespace: String,
    pub cluster: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub app: String,
    pub version: String,
    /// SPIFFE identity (filter-state form only).
    pub identity: String,
}

/// Label keys Istio reads app/version/canonical names from.
pub(crate) const LABEL_APP: &str = "app";
pub(crate) const LABEL_VERSION: &str = "version";
pub(crate) const LABEL_K8S_NAME: &str = "app.kubernetes.io/name";
pub(crate) const LABEL_K8S_VERSION: &str = "app.kubernetes.io/version";
pub(crate) const LABEL_CANONICAL_NAME: &str = "service.istio.io/canonical-name";
pub(crate) const LABEL_CANONICAL_REVISION: &str = "service.istio.io/canonical-revision";

/// Picks `preferred` when non-empty, else `fallback` (Istio prefers `app.kubernetes.io/*`).
pub(crate) fn prefer(preferred: Option<&str>, fallback: Option<&str>) -> String {
    match preferred {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => fallback.unwrap_or_default().to_string(),
    }
}

impl PeerInfo {
    /// Decodes a serialized `google.protobuf.Struct` in either form: the filter-state form
    /// (lowercase keys `workload, namespace, cluster, service, revision, app, version, identity`)
    /// or the header/node-metadata form (`WORKLOAD_NAME, NAMESPACE, CLUSTER_ID, LABELS{..}`).
    /// `None` if the bytes are not a Struct or carry no identity at all.
    pub(crate) fn from_struct_bytes(bytes: &[u8]) -> Option<PeerInfo> {
        let s = Struct::decode(bytes).ok()?;
        let peer = if s.fields.contains_key("WORKLOAD_NAME")
            || s.fields.contains_key("NAMESPACE")
            || s.fields.contains_key("LABELS")
        {
            Self::from_node_form(&s)
        } else {
            Self::from_filter_state_form(&s)
        };
        (peer != PeerInfo::default()).then_some(peer)
    }

    fn from_filter_state_form(s: &Struct) -> PeerInfo {
        let labels = s.sub("labels");
        let label = |k: &str| labels.and_then(|l| l.str(k));
        PeerInfo {
            workload: s.str("workload").unwrap_or_default().to_string(),
            namespace: s.str("namespace").unwrap_or_default().to_string(),
            cluster: s.str("cluster").unwrap_or_default().to_string(),
            canonical_service: prefer(s.str("service"), label(LABEL_CANONICAL_NAME)),
            canonical_revision: prefer(s.str("revision"), label(LABEL_CANONICAL_REVISION)),
            app: prefer(s.str("app"), label(LABEL_APP)),
            version: prefer(s.str("version"), label(LABEL_VERSION)),
            identity: s.str("identity").unwrap_or_default().to_string(),
        }
    }

    fn from_node_form(s: &Struct) -> PeerInfo {
        let labels = s.sub("LABELS");
        let label = |k: &str| labels.and_then(|l| l.str(k));
        PeerInfo {
            workload: s.str("WORKLOAD_NAME").unwrap_or_default().to_string(),
            namespace: s.str("NAMESPACE").unwrap_or_default().to_string(),
            cluster: s.str("CLUSTER_ID").unwrap_or_default().to_string(),
            canonical_service: label(LABEL_CANONICAL_NAME).unwrap_or_default().to_string(),
            canonical_revision: label(LABEL_CANONICAL_REVISION)
                .unwrap_or_default()
                .to_string(),
            app: prefer(label(LABEL_K8S_NAME), label(LABEL_APP)),
            version: prefer(label(LABEL_K8S_VERSION), label(LABEL_VERSION)),
            identity: s.str("IDENTITY").unwrap_or_default().to_string(),
        }
    }

    /// Decodes a base64 `x-envoy-peer-metadata` header value.
    pub(crate) fn from_header(value: &[u8]) -> Option<PeerInfo> {
        Self::from_struct_bytes(&crate::record::base64::decode(value)?)
    }

    /// Istio's endpoint-metadata fallback: `filter_metadata["istio"]["workload"]` =
    /// `"workload;namespace;canonical-service;canonical-revision;cluster-id"` (at least 5 parts).
    pub(crate) fn from_upstream_host_metadata(bytes: &[u8]) -> Option<PeerInfo> {
        let md = Metadata::decode(bytes).ok()?;
        let value = md.filter_metadata.get("istio")?.str("workload")?;
        let parts: Vec<&str> = value.split(';').collect();
        if parts.len() < 5 {
            return None;
        }
        Some(PeerInfo {
            workload: parts[0].to_string(),
            namespace: parts[1].to_string(),
            canonical_service: parts[2].to_string(),
            canonical_revision: parts[3].to_string(),
            cluster: parts[4].to_string(),
            // The endpoint form carries no app/version: those stay unknown, as in Istio.
            app: String::new(),
            version: String::new(),
            identity: String::new(),
        })
    }
}

/// The first Istio service of an upstream cluster: `filter_metadata.istio.services[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterServices {
    pub host: String,
    pub name: String,
    pub namespace: String,
}

impl ClusterServices {
    /// Decodes `envoy.config.core.v3.Metadata` bytes; `None` when there is no istio service.
    pub(crate) fn from_cluster_metadata(bytes: &[u8]) -> Option<ClusterServices> {
        let md = Metadata::decode(bytes).ok()?;
        let first = md
            .filter_metadata
            .get("istio")?
            .list("services")?
            .first()?
            .as_struct()?;
        let field = |k: &str| first.str(k).unwrap_or_default().to_string();
        let services = ClusterServices {
            host: field("host"),
            name: field("name"),
            namespace: field("namespace"),
        };
        (services != ClusterServices::default()).then_some(services)
    }
}

/// The namespace of a SPIFFE id `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`, if it has one.
pub(crate) fn namespace_from_san(san: &str) -> Option<&str> {
    let path = san.strip_prefix("spiffe://")?;
    let mut parts = path.split('/').skip(1);
    while let Some(part) = parts.next() {
        if part == "ns" {
            return parts.next().filter(|ns| !ns.is_empty());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::protobuf::build::*;

    fn filter_state_peer() -> Vec<u8> {
        object(&[
            ("type", string("deployment")),
            ("workload", string("productpage-v1")),
            ("name", string("productpage-v1-123-abc")),
            ("cluster", string("client-cluster")),
            ("namespace", string("default")),
            ("service", string("productpage")),
            ("revision", string("version-1")),
            ("app", string("productpage")),
            ("version", string("v1")),
            (
                "identity",
                string("spiffe://cluster.local/ns/default/sa/pp"),
            ),
        ])
        .encode_to_vec()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_the_filter_state_form() {
        let p = PeerInfo::from_struct_bytes(&filter_state_peer()).unwrap();
        assert_eq!(p.workload, "productpage-v1");
        assert_eq!(p.namespace, "default");
        assert_eq!(p.cluster, "client-cluster");
        assert_eq!(p.canonical_service, "productpage");
        assert_eq!(p.canonical_revision, "version-1");
        assert_eq!(p.app, "productpage");
        assert_eq!(p.version, "v1");
        assert_eq!(p.identity, "spiffe://cluster.local/ns/default/sa/pp");
    }

    fn header_form() -> Struct {
        object(&[
            ("NAME", string("ratings-v1-84975bc778-pxz2w")),
            ("NAMESPACE", string("default")),
            ("WORKLOAD_NAME", string("ratings-v1")),
            ("CLUSTER_ID", string("server-cluster")),
            (
                "LABELS",
                nested(object(&[
                    ("app", string("ratings")),
                    ("app.kubernetes.io/version", string("1.2")),
                    ("version", string("v1")),
                    ("service.istio.io/canonical-name", string("ratings")),
                    ("service.istio.io/canonical-revision", string("version-1")),
                ])),
            ),
        ])
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_the_header_form_and_prefers_k8s_labels() {
        let p = PeerInfo::from_struct_bytes(&header_form().encode_to_vec()).unwrap();
        assert_eq!(p.workload, "ratings-v1");
        assert_eq!(p.cluster, "server-cluster");
        assert_eq!(p.canonical_service, "ratings");
        assert_eq!(p.canonical_revision, "version-1");
        assert_eq!(p.app, "ratings");
        assert_eq!(p.version, "1.2", "app.kubernetes.io/version wins");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn decodes_the_base64_header() {
        let raw = header_form().encode_to_vec();
        let encoded = encode_b64(&raw);
        let unpadded = encoded.trim_end_matches('=');
        let a = PeerInfo::from_header(encoded.as_bytes()).unwrap();
        let b = PeerInfo::from_header(unpadded.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.workload, "ratings-v1");
        assert_eq!(PeerInfo::from_header(b"not base64!"), None);
        assert_eq!(
            PeerInfo::from_struct_bytes(b""),
            None,
            "empty struct is no peer"
        );
    }

    /// Test-only encoder, the inverse of `crate::record::base64::decode`.
    fn encode_b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn metadata(istio: Struct) -> Vec<u8> {
        Metadata {
            filter_metadata: [("istio".to_string(), istio)].into(),
        }
        .encode_to_vec()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_cluster_services() {
        let bytes = metadata(object(&[(
            "services",
            list(vec![
                nested(object(&[
                    ("host", string("server.default.svc.cluster.local")),
                    ("name", string("server")),
                    ("namespace", string("default")),
                ])),
                nested(object(&[("host", string("other.svc"))])),
            ]),
        )]));
        let s = ClusterServices::from_cluster_metadata(&bytes).unwrap();
        assert_eq!(s.host, "server.default.svc.cluster.local");
        assert_eq!(s.name, "server");
        assert_eq!(s.namespace, "default");
        assert_eq!(
            ClusterServices::from_cluster_metadata(&metadata(object(&[]))),
            None
        );
        assert_eq!(ClusterServices::from_cluster_metadata(b"\x0a"), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_endpoint_workload_with_five_parts() {
        let ok = metadata(object(&[(
            "workload",
            string("ratings-v1;default;ratings;version-1;server-cluster"),
        )]));
        let p = PeerInfo::from_upstream_host_metadata(&ok).unwrap();
        assert_eq!(p.workload, "ratings-v1");
        assert_eq!(p.namespace, "default");
        assert_eq!(p.canonical_service, "ratings");
        assert_eq!(p.canonical_revision, "version-1");
        assert_eq!(p.cluster, "server-cluster");
        assert_eq!(p.app, "", "no app in the endpoint form");
        let short = metadata(object(&[("workload", string("a;b;c;d"))]));
        assert_eq!(PeerInfo::from_upstream_host_metadata(&short), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn parses_namespace_from_spiffe_ids() {
        assert_eq!(
            namespace_from_san("spiffe://cluster.local/ns/bookinfo/sa/reviews"),
            Some("bookinfo")
        );
        assert_eq!(namespace_from_san("spiffe://td/sa/x"), None);
        assert_eq!(namespace_from_san("spiffe://td/ns//sa/x"), None);
        assert_eq!(namespace_from_san("https://td/ns/a"), None);
    }
}
