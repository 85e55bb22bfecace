//! Label computation against Istio's expected label sets (client and server sidecars,
//! unknown/latest peers, gRPC, flags, passthrough, host-header fallback).

use super::*;
use crate::record::node::fixtures;
use crate::record::peer::ClusterServices;

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
    // Istio's `server_waypoint_proxy_request_total.yaml.tmpl` (plaintext to the waypoint).
    let down = client_peer();
    let up = PeerInfo {
        identity: "spiffe://cluster.global/ns/default/sa/ratings".into(),
        version: "version-1".into(),
        cluster: "ratings-cluster".into(),
        ..server_peer()
    };
    let services = server_services();
    let facts = RequestFacts {
        downstream_peer: Some(&down),
        upstream_peer: Some(&up),
        services: Some(&services),
        response_code: Some(200),
        ..Default::default()
    };
    let got = labels(&fixtures::server(), Reporter::Waypoint, &facts);
    let expected = [
        "waypoint",
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
        "spiffe://cluster.global/ns/default/sa/ratings",
        "ratings",
        "version-1",
        "server.default.svc.cluster.local",
        "ratings",
        "version-1",
        "server",
        "default",
        "ratings-cluster",
        "http",
        "200",
        "",
        "-",
        "none",
    ];
    assert_eq!(got, expected);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn waypoint_destination_ignores_sans_and_has_no_namespace_fallback() {
    // The upstream SAN is not read at a waypoint; a peer without revision gives `unknown`
    // (`..._emptymeta_request_total.yaml.tmpl`), and without cluster services the service
    // namespace stays `unknown` rather than the peer's.
    let up = PeerInfo {
        namespace: "default".into(),
        identity: "spiffe://cluster.local/ns/default/sa/default".into(),
        ..PeerInfo::default()
    };
    let facts = RequestFacts {
        upstream_peer: Some(&up),
        upstream_peer_san: "spiffe://td/ns/other/sa/r",
        downstream_peer_san: "spiffe://cluster.local/ns/default/sa/client",
        downstream_local_san: "spiffe://cluster.local/ns/default/sa/waypoint",
        ..Default::default()
    };
    let got = labels(&fixtures::server(), Reporter::Waypoint, &facts);
    assert_eq!(got[DESTINATION_WORKLOAD], "unknown");
    assert_eq!(got[DESTINATION_WORKLOAD_NAMESPACE], "default");
    assert_eq!(
        got[DESTINATION_PRINCIPAL],
        "spiffe://cluster.local/ns/default/sa/default"
    );
    assert_eq!(got[DESTINATION_CANONICAL_REVISION], "unknown");
    assert_eq!(got[DESTINATION_SERVICE], "unknown");
    assert_eq!(got[DESTINATION_SERVICE_NAMESPACE], "unknown");
    assert_eq!(got[SOURCE_WORKLOAD_NAMESPACE], "default");
    assert_eq!(got[SOURCE_CANONICAL_REVISION], "latest");
    assert_eq!(got[CONNECTION_SECURITY_POLICY], "mutual_tls");
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

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn tcp_and_peer_projections_follow_istio_order() {
    let mut out = LabelValues::default();
    let peer = client_peer();
    let facts = RequestFacts {
        downstream_peer: Some(&peer),
        downstream_peer_san: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        downstream_local_san: "spiffe://cluster.local/ns/default/sa/bookinfo-ratings",
        response_flags: 0x2,
        ..Default::default()
    };
    let rules = LabelRules {
        reporter: Reporter::Destination,
        host_header_fallback: false,
    };
    compute(&fixtures::client(), rules, &facts, &mut out);
    let tcp = out.tcp_values();
    assert_eq!(tcp.len(), meshtap_report::schema::TCP_LABELS.len());
    assert_eq!(tcp[..20], out.peer_values()[..]);
    assert_eq!(tcp[0], "destination");
    assert_eq!(tcp[20..], ["tcp", "UH", "mutual_tls"]);
    assert_eq!(out.peer_values().len(), 20);
}
