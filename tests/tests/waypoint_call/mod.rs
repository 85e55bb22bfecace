//! What a waypoint's Envoy shows a filter for one request and one TCP connection through it,
//! as the notes establish it (`istio-ambient.md` §3): the waypoint's node (node type `waypoint`
//! in the node id, the Gateway's pod labels), no listener direction, no `x-envoy-peer-metadata`,
//! no certificate on the internal connection, the peers in filter state (`downstream_peer` from
//! the request on, `upstream_peer` only once the response arrived), the principals
//! `io.istio.peer_principal`/`io.istio.local_principal`, and an `inbound-vip` cluster with the
//! service in its metadata.
//!
//! The peers, service and principals are the inputs of Istio's own waypoint expectations
//! (`istio/proxy:testdata/metric/server_waypoint_proxy_connect_*.yaml.tmpl`), so tests can
//! compare with those templates. Shared by `filter_waypoint.rs` and `manifests.rs`; asserts
//! nothing.

#![allow(dead_code)] // each including test crate uses its own part of the call

use std::collections::BTreeMap;

use meshtap_tests::host::envoy_messages::{
    cluster_metadata, peer_filter_state, upstream_host_metadata, PeerWorkload, ServiceRef,
};
use meshtap_tests::host::{
    Direction, HttpExchange, NodeInfo, PeerType, Phase, Properties, PropertyValue, ResponseSpec,
    TcpConnection, TcpConnectionSpec,
};

/// The waypoint pod `istioctl waypoint apply` creates in `default` (Gateway `waypoint`).
pub fn waypoint_node() -> NodeInfo {
    let metadata = [
        ("WORKLOAD_NAME", "waypoint"),
        ("NAMESPACE", "default"),
        ("NAME", "waypoint-7d4f9c8b6-q2xkz"),
        ("CLUSTER_ID", "Kubernetes"),
        ("ISTIO_VERSION", "1.31.0"),
        ("INSTANCE_IPS", "10.244.1.30"),
    ];
    let labels = [
        ("gateway.istio.io/managed", "istio.io-mesh-controller"),
        (
            "gateway.networking.k8s.io/gateway-class-name",
            "istio-waypoint",
        ),
        ("gateway.networking.k8s.io/gateway-name", "waypoint"),
        ("istio.io/dataplane-mode", "none"),
        ("service.istio.io/canonical-name", "waypoint"),
        ("service.istio.io/canonical-revision", "latest"),
    ];
    let owned = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    NodeInfo {
        id: "waypoint~10.244.1.30~waypoint-7d4f9c8b6-q2xkz.default~default.svc.cluster.local"
            .into(),
        metadata: owned(&metadata),
        labels: owned(&labels),
    }
}

/// The peers of a call through the waypoint, as its workload discovery found them.
pub struct WaypointPeers {
    pub downstream: PeerWorkload,
    pub upstream: PeerWorkload,
}

impl WaypointPeers {
    /// The template's peers: a client known only by its workload name, a server with full WDS
    /// data (app/version = canonical name/revision, as `workload_discovery` converts them).
    pub fn template() -> WaypointPeers {
        WaypointPeers {
            downstream: PeerWorkload {
                workload: "productpage-v1".into(),
                ..PeerWorkload::default()
            },
            upstream: PeerWorkload {
                name: "ratings-v1-7c9bd4b87f-2kqnv".into(),
                namespace: "default".into(),
                workload: "ratings-v1".into(),
                workload_type: "deployment".into(),
                cluster: "ratings-cluster".into(),
                service: "ratings".into(),
                revision: "version-1".into(),
                app: "ratings".into(),
                version: "version-1".into(),
                identity: "spiffe://cluster.global/ns/default/sa/ratings".into(),
            },
        }
    }

    /// The `emptymeta` template's peers: discovery found nothing but the server's namespace
    /// and its default identity.
    pub fn empty_metadata() -> WaypointPeers {
        WaypointPeers {
            upstream: PeerWorkload {
                namespace: "default".into(),
                identity: "spiffe://cluster.local/ns/default/sa/default".into(),
                ..PeerWorkload::default()
            },
            ..WaypointPeers::template()
        }
    }
}

const CLIENT_PRINCIPAL: &str = "spiffe://cluster.local/ns/default/sa/client";
const WAYPOINT_PRINCIPAL: &str = "spiffe://cluster.local/ns/default/sa/waypoint";

/// Properties every stream or connection through the waypoint has from its start.
fn waypoint_properties(peers: &WaypointPeers, port: u16, peers_phase: Phase) -> Properties {
    let mut props = Properties::new();
    props.set_string(
        &["xds", "cluster_name"],
        &format!("inbound-vip|{port}|http|server.default.svc.cluster.local"),
        Phase::Request,
    );
    let service = ServiceRef {
        host: "server.default.svc.cluster.local".into(),
        name: "server".into(),
        namespace: "default".into(),
    };
    props.set(
        &["xds", "cluster_metadata"],
        PropertyValue::Bytes(cluster_metadata(&[service])),
        Phase::Request,
    );
    // Endpoint metadata a sidecar's client side would fall back to: a waypoint must not.
    props.set(
        &["xds", "upstream_host_metadata"],
        PropertyValue::Bytes(upstream_host_metadata(
            "decoy;decoy-ns;decoy;decoy-rev;decoy-cluster",
        )),
        Phase::Request,
    );
    props.set_string(
        &["filter_state", "io.istio.peer_principal"],
        CLIENT_PRINCIPAL,
        Phase::Request,
    );
    props.set_string(
        &["filter_state", "io.istio.local_principal"],
        WAYPOINT_PRINCIPAL,
        Phase::Request,
    );
    props.set(
        &["filter_state", "downstream_peer"],
        PropertyValue::Bytes(peer_filter_state(&peers.downstream)),
        Phase::Request,
    );
    props.set(
        &["filter_state", "upstream_peer"],
        PropertyValue::Bytes(peer_filter_state(&peers.upstream)),
        peers_phase,
    );
    props
}

/// One HTTP GET through the waypoint answered 200: `upstream_peer` appears with the response
/// (`waypoint_upstream_peer_metadata` runs in `encodeHeaders`).
pub fn waypoint_request(peers: &WaypointPeers) -> HttpExchange {
    let mut properties = waypoint_properties(peers, 9080, Phase::Response);
    properties.set_int(&["response", "code"], 200, Phase::Response);
    properties.set(&["response", "flags"], PropertyValue::Uint(0), Phase::Log);
    properties.set_int(&["request", "duration"], 7_000_000, Phase::Log);
    properties.set_int(&["request", "total_size"], 120, Phase::Log);
    properties.set_int(&["response", "total_size"], 480, Phase::Log);
    let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    HttpExchange {
        request_headers: headers(&[
            (":method", "GET"),
            (":path", "/ratings/0"),
            (":scheme", "http"),
            (":authority", "server.default.svc.cluster.local:9080"),
        ]),
        response: Some(ResponseSpec {
            headers: headers(&[(":status", "200")]),
            ..ResponseSpec::default()
        }),
        properties,
        ..HttpExchange::default()
    }
}

/// One TCP connection to a TCP service through the waypoint: 10 bytes up, 20 bytes down,
/// closed by the client. The network chain's metadata exchange leaves both peers before the
/// first bytes.
pub fn waypoint_connection(peers: &WaypointPeers) -> TcpConnection {
    let mut properties = waypoint_properties(peers, 9000, Phase::Request);
    properties.set(&["response", "flags"], PropertyValue::Uint(0), Phase::Log);
    TcpConnection {
        spec: TcpConnectionSpec { properties },
        chunks: vec![
            (Direction::Downstream, vec![b'q'; 10], false),
            (Direction::Upstream, vec![b'r'; 20], true),
            (Direction::Downstream, Vec::new(), true),
        ],
        closed_by: PeerType::Remote,
    }
}
