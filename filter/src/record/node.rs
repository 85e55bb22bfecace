//! The local proxy's identity, read once from Envoy's node metadata at configure time.
//!
//! Owns which node-metadata keys the filter reads and how they become a [`LocalNode`]. It reads
//! through a caller-supplied lookup (the plugin glue wraps `get_property`) and must not call the
//! host itself. Values are kept raw: Istio emits local labels without `unknown` defaults.

use meshtap_report::Proxy;

use crate::record::peer::{
    prefer, LABEL_APP, LABEL_CANONICAL_NAME, LABEL_CANONICAL_REVISION, LABEL_K8S_NAME,
    LABEL_K8S_VERSION, LABEL_VERSION,
};

/// Node metadata of this proxy; missing keys are empty strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNode {
    pub workload: String,
    pub namespace: String,
    pub pod: String,
    pub cluster_id: String,
    pub istio_version: String,
    pub mesh_id: String,
    pub instance_ips: Vec<String>,
    pub node_id: String,
    pub app: String,
    pub version: String,
    pub canonical_service: String,
    pub canonical_revision: String,
}

/// Every property path [`LocalNode::read`] asks for, for hosts and tests.
pub(crate) const NODE_PATHS: [&[&str]; 14] = [
    &["node", "metadata", "WORKLOAD_NAME"],
    &["node", "metadata", "NAMESPACE"],
    &["node", "metadata", "NAME"],
    &["node", "metadata", "CLUSTER_ID"],
    &["node", "metadata", "ISTIO_VERSION"],
    &["node", "metadata", "MESH_ID"],
    &["node", "metadata", "INSTANCE_IPS"],
    &["node", "id"],
    &["node", "metadata", "LABELS", LABEL_APP],
    &["node", "metadata", "LABELS", LABEL_VERSION],
    &["node", "metadata", "LABELS", LABEL_K8S_NAME],
    &["node", "metadata", "LABELS", LABEL_K8S_VERSION],
    &["node", "metadata", "LABELS", LABEL_CANONICAL_NAME],
    &["node", "metadata", "LABELS", LABEL_CANONICAL_REVISION],
];

impl LocalNode {
    /// Reads the node metadata through `get`, which returns a property's string value or `None`
    /// when the host has no such property.
    pub fn read(get: impl Fn(&[&str]) -> Option<String>) -> LocalNode {
        let v: Vec<Option<String>> = NODE_PATHS.iter().map(|p| get(p)).collect();
        let s = |i: usize| v[i].clone().unwrap_or_default();
        LocalNode {
            workload: s(0),
            namespace: s(1),
            pod: s(2),
            cluster_id: s(3),
            istio_version: s(4),
            mesh_id: s(5),
            instance_ips: s(6)
                .split(',')
                .map(str::trim)
                .filter(|ip| !ip.is_empty())
                .map(String::from)
                .collect(),
            node_id: s(7),
            app: prefer(v[10].as_deref(), v[8].as_deref()),
            version: prefer(v[11].as_deref(), v[9].as_deref()),
            canonical_service: s(12),
            canonical_revision: s(13),
        }
    }

    /// The report's identity block for this proxy.
    pub fn proxy(&self) -> Proxy {
        Proxy {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            workload: self.workload.clone(),
            node_id: self.node_id.clone(),
            cluster_id: self.cluster_id.clone(),
            istio_version: self.istio_version.clone(),
            mesh_id: self.mesh_id.clone(),
            filter_version: env!("CARGO_PKG_VERSION").to_string(),
            instance_ips: self.instance_ips.clone(),
        }
    }

    /// Whether this proxy is an ambient waypoint: its node id has Istio's node type `waypoint`
    /// (`waypoint~<ip>~<pod>.<ns>~<domain>`, `pkg/model/proxy.go` in istio/istio). istiod uses
    /// the same node type to give the stats filter `reporter: SERVER_GATEWAY`
    /// (`generateStatsConfig`, `pilot/pkg/model/telemetry.go`).
    pub(crate) fn is_waypoint(&self) -> bool {
        self.node_id.starts_with("waypoint~")
    }

    /// The `x-meshtap-pod` header value, `<namespace>/<pod>`.
    pub(crate) fn pod_header(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Node metadata of the test client (`productpage-v1`) and server (`ratings-v1`).
    use super::LocalNode;

    pub(crate) fn client() -> LocalNode {
        LocalNode::read(|p| {
            let v = match p {
                ["node", "metadata", "WORKLOAD_NAME"] => "productpage-v1",
                ["node", "metadata", "NAMESPACE"] => "default",
                ["node", "metadata", "NAME"] => "productpage-v1-84975bc778-pxz2w",
                ["node", "metadata", "CLUSTER_ID"] => "client-cluster",
                ["node", "metadata", "INSTANCE_IPS"] => "10.52.0.34,fe80::1",
                ["node", "metadata", "LABELS", "app"] => "productpage",
                ["node", "metadata", "LABELS", "version"] => "v1",
                ["node", "metadata", "LABELS", "service.istio.io/canonical-name"] => {
                    "productpage-v1"
                }
                ["node", "metadata", "LABELS", "service.istio.io/canonical-revision"] => {
                    "version-1"
                }
                _ => return None,
            };
            Some(v.to_string())
        })
    }

    pub(crate) fn server() -> LocalNode {
        LocalNode::read(|p| {
            let v = match p {
                ["node", "metadata", "WORKLOAD_NAME"] => "ratings-v1",
                ["node", "metadata", "NAMESPACE"] => "default",
                ["node", "metadata", "NAME"] => "ratings-v1-5f9d-x2",
                ["node", "metadata", "CLUSTER_ID"] => "server-cluster",
                ["node", "metadata", "LABELS", "app"] => "ratings",
                ["node", "metadata", "LABELS", "version"] => "v1",
                ["node", "metadata", "LABELS", "service.istio.io/canonical-name"] => "ratings",
                ["node", "metadata", "LABELS", "service.istio.io/canonical-revision"] => {
                    "version-1"
                }
                _ => return None,
            };
            Some(v.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_raw_values_and_splits_ips() {
        let n = fixtures::client();
        assert_eq!(n.workload, "productpage-v1");
        assert_eq!(n.instance_ips, vec!["10.52.0.34", "fe80::1"]);
        assert_eq!(n.mesh_id, "", "missing keys stay empty, not unknown");
        let p = n.proxy();
        assert_eq!(p.pod, "productpage-v1-84975bc778-pxz2w");
        assert_eq!(p.filter_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(n.pod_header(), "default/productpage-v1-84975bc778-pxz2w");
        assert!(!n.is_waypoint());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn waypoint_node_type_comes_from_the_node_id() {
        let node = |id: &'static str| {
            LocalNode::read(move |p| (p == ["node", "id"]).then(|| id.to_string()))
        };
        let id = "waypoint~10.244.1.30~waypoint-7d4f9c8b6-abcde.default~default.svc.cluster.local";
        assert!(node(id).is_waypoint());
        assert!(!node(
            "sidecar~10.244.1.12~curl-5b549b49b8-mq2ws.default~default.svc.cluster.local"
        )
        .is_waypoint());
        assert!(!node(
            "router~10.244.1.5~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local"
        )
        .is_waypoint());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn kubernetes_app_labels_win() {
        let n = LocalNode::read(|p| match p {
            ["node", "metadata", "LABELS", "app"] => Some("old".into()),
            ["node", "metadata", "LABELS", "app.kubernetes.io/name"] => Some("new".into()),
            ["node", "metadata", "LABELS", "version"] => Some("v1".into()),
            _ => None,
        });
        assert_eq!(n.app, "new");
        assert_eq!(n.version, "v1");
    }
}
