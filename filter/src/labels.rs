//! Istio's 25 request-metric label values (native stats filter, Istio 1.18+), computed from a
//! [`RequestFacts`] and the [`LocalNode`].
//!
//! Owns the rules: which side supplies which label, `unknown`/`latest` defaults for peers, raw
//! local values, destination-service fallbacks and the passthrough/blackhole overrides. It writes
//! into a reused [`LabelValues`] scratch so the steady state allocates nothing. It must not read
//! from the host nor aggregate.

use std::fmt::Write;

use meshtap_report::schema::{http::*, Reporter, HTTP_LABELS};

use crate::facts::RequestFacts;
use crate::flags::write_flags;
use crate::node::LocalNode;
use crate::peer::{namespace_from_san, PeerInfo};

/// Number of labels of the request metrics.
pub const LABEL_COUNT: usize = HTTP_LABELS.len();

const UNKNOWN: &str = "unknown";
const LATEST: &str = "latest";

/// Cluster names that name the destination service themselves.
const SELF_NAMING_CLUSTERS: [&str; 5] = [
    "BlackHoleCluster",
    "PassthroughCluster",
    "InboundPassthroughCluster",
    "InboundPassthroughClusterIpv4",
    "InboundPassthroughClusterIpv6",
];

/// The 25 label values in Istio's order; reused between requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelValues(pub [String; LABEL_COUNT]);

impl LabelValues {
    pub fn get(&self, index: usize) -> &str {
        &self.0[index]
    }

    fn set(&mut self, index: usize, value: &str) {
        let slot = &mut self.0[index];
        slot.clear();
        slot.push_str(value);
    }

    fn set_or(&mut self, index: usize, value: &str, default: &str) {
        self.set(index, if value.is_empty() { default } else { value });
    }
}

/// How the request's sides map to the reporter.
#[derive(Debug, Clone, Copy)]
pub struct LabelRules {
    pub reporter: Reporter,
    /// Use `:authority` as destination service when the cluster names none (client side only).
    pub host_header_fallback: bool,
}

/// Computes the labels of one request into `out`.
pub fn compute(local: &LocalNode, rules: LabelRules, facts: &RequestFacts, out: &mut LabelValues) {
    out.set(REPORTER, rules.reporter.as_str());
    match rules.reporter {
        Reporter::Source => {
            local_source(local, facts.upstream_local_san, out);
            peer_destination(facts, out);
            out.set(CONNECTION_SECURITY_POLICY, UNKNOWN);
        }
        Reporter::Destination => {
            peer_source(facts, out);
            local_destination(local, facts.downstream_local_san, out);
            server_security(facts, out);
        }
        Reporter::Waypoint => {
            peer_source(facts, out);
            peer_destination(facts, out);
            server_security(facts, out);
        }
    }
    destination_service(local, rules, facts, out);
    request_outcome(facts, out);
}

fn local_source(local: &LocalNode, local_san: &str, out: &mut LabelValues) {
    out.set(SOURCE_WORKLOAD, &local.workload);
    out.set(SOURCE_CANONICAL_SERVICE, &local.canonical_service);
    out.set(SOURCE_CANONICAL_REVISION, &local.canonical_revision);
    out.set(SOURCE_WORKLOAD_NAMESPACE, &local.namespace);
    out.set_or(SOURCE_PRINCIPAL, local_san, UNKNOWN);
    out.set(SOURCE_APP, &local.app);
    out.set(SOURCE_VERSION, &local.version);
    out.set(SOURCE_CLUSTER, &local.cluster_id);
}

fn local_destination(local: &LocalNode, local_san: &str, out: &mut LabelValues) {
    out.set(DESTINATION_WORKLOAD, &local.workload);
    out.set(DESTINATION_WORKLOAD_NAMESPACE, &local.namespace);
    out.set_or(DESTINATION_PRINCIPAL, local_san, UNKNOWN);
    out.set(DESTINATION_APP, &local.app);
    out.set(DESTINATION_VERSION, &local.version);
    out.set(DESTINATION_CANONICAL_SERVICE, &local.canonical_service);
    out.set(DESTINATION_CANONICAL_REVISION, &local.canonical_revision);
    out.set(DESTINATION_CLUSTER, &local.cluster_id);
}

const EMPTY_PEER: &PeerInfo = &PeerInfo {
    workload: String::new(),
    namespace: String::new(),
    cluster: String::new(),
    canonical_service: String::new(),
    canonical_revision: String::new(),
    app: String::new(),
    version: String::new(),
    identity: String::new(),
};

fn workload_namespace<'a>(san: &'a str, peer: &'a PeerInfo) -> &'a str {
    namespace_from_san(san).unwrap_or(&peer.namespace)
}

fn peer_source(facts: &RequestFacts, out: &mut LabelValues) {
    let peer = facts.downstream_peer.unwrap_or(EMPTY_PEER);
    let san = facts.downstream_peer_san;
    out.set_or(SOURCE_WORKLOAD, &peer.workload, UNKNOWN);
    out.set_or(SOURCE_CANONICAL_SERVICE, &peer.canonical_service, UNKNOWN);
    out.set_or(SOURCE_CANONICAL_REVISION, &peer.canonical_revision, LATEST);
    out.set_or(
        SOURCE_WORKLOAD_NAMESPACE,
        workload_namespace(san, peer),
        UNKNOWN,
    );
    out.set_or(SOURCE_PRINCIPAL, san, UNKNOWN);
    out.set_or(SOURCE_APP, &peer.app, UNKNOWN);
    out.set_or(SOURCE_VERSION, &peer.version, UNKNOWN);
    out.set_or(SOURCE_CLUSTER, &peer.cluster, UNKNOWN);
}

fn peer_destination(facts: &RequestFacts, out: &mut LabelValues) {
    let peer = facts.upstream_peer.unwrap_or(EMPTY_PEER);
    let san = facts.upstream_peer_san;
    out.set_or(DESTINATION_WORKLOAD, &peer.workload, UNKNOWN);
    out.set_or(
        DESTINATION_WORKLOAD_NAMESPACE,
        workload_namespace(san, peer),
        UNKNOWN,
    );
    let principal = if san.is_empty() { &peer.identity } else { san };
    out.set_or(DESTINATION_PRINCIPAL, principal, UNKNOWN);
    out.set_or(DESTINATION_APP, &peer.app, UNKNOWN);
    out.set_or(DESTINATION_VERSION, &peer.version, UNKNOWN);
    out.set_or(
        DESTINATION_CANONICAL_SERVICE,
        &peer.canonical_service,
        UNKNOWN,
    );
    out.set_or(
        DESTINATION_CANONICAL_REVISION,
        &peer.canonical_revision,
        LATEST,
    );
    out.set_or(DESTINATION_CLUSTER, &peer.cluster, UNKNOWN);
}

fn server_security(facts: &RequestFacts, out: &mut LabelValues) {
    let mtls = !facts.downstream_peer_san.is_empty() && !facts.downstream_local_san.is_empty();
    out.set(
        CONNECTION_SECURITY_POLICY,
        if mtls { "mutual_tls" } else { "none" },
    );
}

fn destination_service(
    local: &LocalNode,
    rules: LabelRules,
    facts: &RequestFacts,
    out: &mut LabelValues,
) {
    let server = rules.reporter == Reporter::Destination;
    let services = facts.services;
    let service_host = services.map(|s| s.host.as_str()).unwrap_or_default();
    let header_host = match facts.authority {
        Some(a) if rules.host_header_fallback && !server && !a.is_empty() => a,
        _ => "",
    };
    let (host, name) = if !service_host.is_empty() {
        let name = match services.map(|s| s.name.as_str()) {
            Some(n) if !n.is_empty() => n,
            _ => service_host.split('.').next().unwrap_or(service_host),
        };
        (service_host, name)
    } else if !header_host.is_empty() {
        (header_host, header_host)
    } else if server {
        (
            local.canonical_service.as_str(),
            local.canonical_service.as_str(),
        )
    } else {
        ("", services.map(|s| s.name.as_str()).unwrap_or_default())
    };
    out.set_or(DESTINATION_SERVICE, host, UNKNOWN);
    out.set_or(DESTINATION_SERVICE_NAME, name, UNKNOWN);

    if let Some(cluster) = facts
        .cluster_name
        .filter(|c| SELF_NAMING_CLUSTERS.contains(c))
    {
        out.set(DESTINATION_SERVICE_NAME, cluster);
    }
    match facts.route_name {
        Some("block_all") => out.set(DESTINATION_SERVICE_NAME, "BlackHoleCluster"),
        Some("allow_any") => out.set(DESTINATION_SERVICE_NAME, "PassthroughCluster"),
        _ => {}
    }

    let service_namespace = services.map(|s| s.namespace.as_str()).unwrap_or_default();
    let fallback_namespace = if server {
        local.namespace.as_str()
    } else {
        facts
            .upstream_peer
            .map(|p| p.namespace.as_str())
            .unwrap_or_default()
    };
    let namespace = if service_namespace.is_empty() {
        fallback_namespace
    } else {
        service_namespace
    };
    out.set_or(DESTINATION_SERVICE_NAMESPACE, namespace, UNKNOWN);
}

fn request_outcome(facts: &RequestFacts, out: &mut LabelValues) {
    out.set(REQUEST_PROTOCOL, if facts.grpc { "grpc" } else { "http" });
    let code = &mut out.0[RESPONSE_CODE];
    code.clear();
    let _ = write!(code, "{}", facts.response_code.unwrap_or(0));
    let grpc_status = &mut out.0[GRPC_RESPONSE_STATUS];
    grpc_status.clear();
    if let (true, Some(status)) = (facts.grpc, facts.grpc_status) {
        let _ = write!(grpc_status, "{status}");
    }
    let flags = &mut out.0[RESPONSE_FLAGS];
    flags.clear();
    write_flags(flags, facts.response_flags);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::fixtures;
    use crate::peer::ClusterServices;

    fn server_peer() -> PeerInfo {
        PeerInfo {
            workload: "ratings-v1".into(),
            namespace: "default".into(),
            cluster: "server-cluster".into(),
            canonical_service: "ratings".into(),
            canonical_revision: "version-1".into(),
            app: "ratings".into(),
            version: "v1".into(),
            identity: String::new(),
        }
    }

    fn client_peer() -> PeerInfo {
        PeerInfo {
            workload: "productpage-v1".into(),
            namespace: "default".into(),
            cluster: "client-cluster".into(),
            canonical_service: "productpage-v1".into(),
            canonical_revision: "version-1".into(),
            app: "productpage".into(),
            version: "v1".into(),
            identity: String::new(),
        }
    }

    fn server_services() -> ClusterServices {
        ClusterServices {
            host: "server.default.svc.cluster.local".into(),
            name: "server".into(),
            namespace: "default".into(),
        }
    }

    fn labels(local: &LocalNode, reporter: Reporter, facts: &RequestFacts) -> Vec<String> {
        let mut out = LabelValues::default();
        let rules = LabelRules {
            reporter,
            host_header_fallback: true,
        };
        compute(local, rules, facts, &mut out);
        out.0.to_vec()
    }

    fn expect(got: &[String], want: &[&str]) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "label {} ({})", i, HTTP_LABELS[i]);
        }
    }

    const CLIENT_SIDE: [&str; 25] = [
        "source",
        "productpage-v1",
        "productpage-v1",
        "version-1",
        "default",
        "unknown",
        "productpage",
        "v1",
        "client-cluster",
        "ratings-v1",
        "default",
        "unknown",
        "ratings",
        "v1",
        "server.default.svc.cluster.local",
        "ratings",
        "version-1",
        "server",
        "default",
        "server-cluster",
        "http",
        "200",
        "",
        "-",
        "unknown",
    ];

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn client_side_matches_istio() {
        let (peer, services) = (server_peer(), server_services());
        let facts = RequestFacts {
            services: Some(&services),
            upstream_peer: Some(&peer),
            response_code: Some(200),
            authority: Some("ignored:8080"),
            ..Default::default()
        };
        expect(
            &labels(&fixtures::client(), Reporter::Source, &facts),
            &CLIENT_SIDE,
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn server_side_matches_istio_with_mtls() {
        let peer = client_peer();
        let facts = RequestFacts {
            downstream_peer: Some(&peer),
            downstream_peer_san: "spiffe://cluster.local/ns/frontend/sa/productpage",
            downstream_local_san: "spiffe://cluster.local/ns/default/sa/ratings",
            response_code: Some(503),
            response_flags: 0x20 | 0x8000,
            authority: Some("never-used"),
            ..Default::default()
        };
        let got = labels(&fixtures::server(), Reporter::Destination, &facts);
        expect(
            &got,
            &[
                "destination",
                "productpage-v1",
                "productpage-v1",
                "version-1",
                "frontend", // from the SAN, not the peer's namespace
                "spiffe://cluster.local/ns/frontend/sa/productpage",
                "productpage",
                "v1",
                "client-cluster",
                "ratings-v1",
                "default",
                "spiffe://cluster.local/ns/default/sa/ratings",
                "ratings",
                "v1",
                "ratings", // inbound: local canonical name, never the Host header
                "ratings",
                "version-1",
                "ratings",
                "default",
                "server-cluster",
                "http",
                "503",
                "",
                "UF,URX",
                "mutual_tls",
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn server_side_with_inbound_cluster_services_matches_istio() {
        let (peer, services) = (client_peer(), server_services());
        let facts = RequestFacts {
            cluster_name: Some("inbound|9080||"),
            services: Some(&services),
            downstream_peer: Some(&peer),
            response_code: Some(404),
            ..Default::default()
        };
        let got = labels(&fixtures::server(), Reporter::Destination, &facts);
        expect(
            &got,
            &[
                "destination",
                "productpage-v1",
                "productpage-v1",
                "version-1",
                "default",
                "unknown",
                "productpage",
                "v1",
                "client-cluster",
                "ratings-v1",
                "default",
                "unknown",
                "ratings",
                "v1",
                "server.default.svc.cluster.local",
                "ratings",
                "version-1",
                "server",
                "default",
                "server-cluster",
                "http",
                "404",
                "",
                "-",
                "none",
            ],
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn unknown_peer_gets_unknown_and_latest() {
        let facts = RequestFacts::default();
        let got = labels(&fixtures::server(), Reporter::Destination, &facts);
        for i in [1, 2, 4, 5, 6, 7, 8] {
            assert_eq!(got[i], "unknown", "{}", HTTP_LABELS[i]);
        }
        assert_eq!(got[SOURCE_CANONICAL_REVISION], "latest");
        assert_eq!(got[CONNECTION_SECURITY_POLICY], "none");
        assert_eq!(got[RESPONSE_CODE], "0");
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_CANONICAL_REVISION], "latest");
        assert_eq!(got[DESTINATION_SERVICE], "unknown");
        assert_eq!(got[DESTINATION_SERVICE_NAME], "unknown");
        assert_eq!(got[DESTINATION_SERVICE_NAMESPACE], "unknown");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn local_values_stay_raw() {
        let mut local = fixtures::client();
        local.version.clear();
        let got = labels(&local, Reporter::Source, &RequestFacts::default());
        assert_eq!(got[SOURCE_VERSION], "");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn grpc_status_only_for_grpc() {
        let mut facts = RequestFacts {
            grpc: true,
            grpc_status: Some(14),
            response_code: Some(200),
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[REQUEST_PROTOCOL], "grpc");
        assert_eq!(got[GRPC_RESPONSE_STATUS], "14");
        facts.grpc_status = None;
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[GRPC_RESPONSE_STATUS], "");
        facts.grpc = false;
        facts.grpc_status = Some(0);
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[REQUEST_PROTOCOL], "http");
        assert_eq!(got[GRPC_RESPONSE_STATUS], "");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn host_header_fallback_on_and_off() {
        let peer = server_peer();
        let facts = RequestFacts {
            upstream_peer: Some(&peer),
            authority: Some("127.0.0.1:8080"),
            response_code: Some(200),
            ..Default::default()
        };
        let on = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(on[DESTINATION_SERVICE], "127.0.0.1:8080");
        assert_eq!(on[DESTINATION_SERVICE_NAME], "127.0.0.1:8080");
        assert_eq!(
            on[DESTINATION_SERVICE_NAMESPACE], "default",
            "peer namespace"
        );
        let mut out = LabelValues::default();
        let rules = LabelRules {
            reporter: Reporter::Source,
            host_header_fallback: false,
        };
        compute(&fixtures::client(), rules, &facts, &mut out);
        assert_eq!(out.get(DESTINATION_SERVICE), "unknown");
        assert_eq!(out.get(DESTINATION_SERVICE_NAME), "unknown");
        assert_eq!(out.get(DESTINATION_SERVICE_NAMESPACE), "default");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn service_host_without_name_is_cut_at_the_first_dot() {
        let services = ClusterServices {
            host: "reviews.bookinfo.svc.cluster.local".into(),
            ..Default::default()
        };
        let facts = RequestFacts {
            services: Some(&services),
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_SERVICE_NAME], "reviews");
        assert_eq!(got[DESTINATION_SERVICE_NAMESPACE], "unknown");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn passthrough_and_blackhole_name_the_service() {
        let facts = RequestFacts {
            cluster_name: Some("PassthroughCluster"),
            authority: Some("security.ubuntu.com"),
            response_code: Some(200),
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_SERVICE], "security.ubuntu.com");
        assert_eq!(got[DESTINATION_SERVICE_NAME], "PassthroughCluster");
        let facts = RequestFacts {
            route_name: Some("block_all"),
            response_code: Some(502),
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_SERVICE_NAME], "BlackHoleCluster");
        let facts = RequestFacts {
            cluster_name: Some("InboundPassthroughClusterIpv4"),
            ..Default::default()
        };
        let got = labels(&fixtures::server(), Reporter::Destination, &facts);
        assert_eq!(
            got[DESTINATION_SERVICE_NAME],
            "InboundPassthroughClusterIpv4"
        );
        assert_eq!(got[DESTINATION_SERVICE], "ratings");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn client_principal_falls_back_to_peer_identity() {
        let mut peer = server_peer();
        peer.identity = "spiffe://cluster.local/ns/default/sa/ratings".into();
        let facts = RequestFacts {
            upstream_peer: Some(&peer),
            upstream_local_san: "spiffe://cluster.local/ns/default/sa/productpage",
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_PRINCIPAL], peer.identity);
        assert_eq!(
            got[SOURCE_PRINCIPAL],
            "spiffe://cluster.local/ns/default/sa/productpage"
        );
        let facts = RequestFacts {
            upstream_peer: Some(&peer),
            upstream_peer_san: "spiffe://td/ns/other/sa/r",
            ..Default::default()
        };
        let got = labels(&fixtures::client(), Reporter::Source, &facts);
        assert_eq!(got[DESTINATION_PRINCIPAL], "spiffe://td/ns/other/sa/r");
        assert_eq!(got[DESTINATION_WORKLOAD_NAMESPACE], "other");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn waypoint_uses_both_peers() {
        let (down, up, services) = (client_peer(), server_peer(), server_services());
        let facts = RequestFacts {
            downstream_peer: Some(&down),
            upstream_peer: Some(&up),
            services: Some(&services),
            upstream_peer_san: "spiffe://cluster.global/ns/default/sa/ratings",
            response_code: Some(200),
            ..Default::default()
        };
        let got = labels(&fixtures::server(), Reporter::Waypoint, &facts);
        assert_eq!(got[REPORTER], "waypoint");
        assert_eq!(got[SOURCE_WORKLOAD], "productpage-v1");
        assert_eq!(got[DESTINATION_WORKLOAD], "ratings-v1");
        assert_eq!(
            got[DESTINATION_PRINCIPAL],
            "spiffe://cluster.global/ns/default/sa/ratings"
        );
        assert_eq!(got[DESTINATION_SERVICE], "server.default.svc.cluster.local");
        assert_eq!(got[CONNECTION_SECURITY_POLICY], "none");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn scratch_is_fully_overwritten() {
        let mut out = LabelValues::default();
        let peer = server_peer();
        let services = server_services();
        let rich = RequestFacts {
            services: Some(&services),
            upstream_peer: Some(&peer),
            grpc: true,
            grpc_status: Some(3),
            response_code: Some(200),
            response_flags: 0x2,
            ..Default::default()
        };
        let rules = LabelRules {
            reporter: Reporter::Source,
            host_header_fallback: true,
        };
        compute(&fixtures::client(), rules, &rich, &mut out);
        let plain = RequestFacts {
            services: Some(&services),
            upstream_peer: Some(&peer),
            response_code: Some(200),
            ..Default::default()
        };
        compute(&fixtures::client(), rules, &plain, &mut out);
        expect(&out.0, &CLIENT_SIDE);
    }
}
