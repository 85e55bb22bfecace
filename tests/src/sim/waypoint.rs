//! Waypoints of an ambient scenario: the waypoint pod Istio deploys for a Gateway of class
//! `istio-waypoint`, its Envoy's node (node type `waypoint` in the id, the Gateway's pod
//! labels), and what that Envoy shows a filter for one call through it (istio-ambient notes
//! §3): no listener direction, no `x-envoy-peer-metadata`, no certificate on the internal
//! connection; the client's principal in `io.istio.peer_principal` and the waypoint's in
//! `io.istio.local_principal`; the peers as its workload discovery converts them in filter
//! state — `downstream_peer` from the request on, `upstream_peer` only once the upstream's
//! response headers arrive (`waypoint_upstream_peer_metadata` runs in `encodeHeaders`; TCP
//! services' metadata exchange sets both before the first bytes) — and an `inbound-vip` cluster
//! with the service in its metadata.
//!
//! Pure construction of host inputs, like `mesh.rs` for sidecars.

use std::collections::BTreeMap;

use crate::host::envoy_messages::{cluster_metadata, peer_filter_state, response_flag_bits};
use crate::host::{HttpExchange, NodeInfo, Phase, Properties, PropertyValue, TcpConnectionSpec};

use super::ambient::AmbientPeer;
use super::mesh::{CallInstance, Target, CLIENT_PORT, UPSTREAM_LOCAL_PORT};
use super::mesh_access_log::Connection;
use super::scenario::{MeshSettings, Protocol, Scenario, DEFAULT_NODE};
use super::workload::ResolvedWorkload;

/// A waypoint with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedWaypoint {
    /// The Gateway's name: also the Deployment, its service account and canonical name.
    pub name: String,
    pub namespace: String,
    pub pod: String,
    pub ip: String,
    pub node: String,
    pub identity: String,
    pub cluster: String,
    pub workers: usize,
}

impl ResolvedWaypoint {
    /// Every waypoint of `scenario`, resolved.
    pub fn resolve_all(scenario: &Scenario) -> Vec<ResolvedWaypoint> {
        let mesh = &scenario.mesh;
        scenario
            .waypoints
            .iter()
            .enumerate()
            .map(|(i, wp)| ResolvedWaypoint {
                name: wp.name.clone(),
                namespace: wp.namespace.clone(),
                pod: format!("{}-{:x}-{:05x}", wp.name, 0x7d40 + i, i * 6007 + 2323),
                ip: wp
                    .ip
                    .clone()
                    .unwrap_or_else(|| format!("10.1.1.{}", i + 10)),
                node: wp.node.clone().unwrap_or_else(|| DEFAULT_NODE.into()),
                identity: format!(
                    "spiffe://{}/ns/{}/sa/{}",
                    mesh.trust_domain, wp.namespace, wp.name
                ),
                cluster: mesh.cluster.clone(),
                workers: wp.workers,
            })
            .collect()
    }

    /// The key of this waypoint's proxy among the simulation's proxies (no workload name has a
    /// `/`).
    pub fn proxy_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The waypoint's Envoy node, as `istioctl waypoint apply` deploys it (istio/istio
    /// `manifests/charts/istio-control/istio-discovery/files/waypoint.yaml`).
    pub fn node(&self, mesh: &MeshSettings) -> NodeInfo {
        let owned = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        NodeInfo {
            id: format!(
                "waypoint~{}~{}.{}~{}.svc.cluster.local",
                self.ip, self.pod, self.namespace, self.namespace
            ),
            metadata: owned(&[
                ("WORKLOAD_NAME", &self.name),
                ("NAMESPACE", &self.namespace),
                ("NAME", &self.pod),
                ("CLUSTER_ID", &self.cluster),
                ("ISTIO_VERSION", &mesh.istio_version),
                ("MESH_ID", &mesh.mesh_id),
                ("INSTANCE_IPS", &self.ip),
            ]),
            labels: owned(&[
                ("gateway.istio.io/managed", "istio.io-mesh-controller"),
                (
                    "gateway.networking.k8s.io/gateway-class-name",
                    "istio-waypoint",
                ),
                ("gateway.networking.k8s.io/gateway-name", &self.name),
                ("istio.io/dataplane-mode", "none"),
                ("service.istio.io/canonical-name", &self.name),
                ("service.istio.io/canonical-revision", "latest"),
            ]),
        }
    }

    /// The waypoint as ztunnel's workload discovery knows it.
    pub fn ambient_peer(&self) -> AmbientPeer {
        AmbientPeer {
            workload: self.name.clone(),
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            canonical_service: self.name.clone(),
            canonical_revision: "latest".into(),
            identity: self.identity.clone(),
            cluster: self.cluster.clone(),
            ip: self.ip.clone(),
            region: String::new(),
            zone: String::new(),
        }
    }
}

impl CallInstance<'_> {
    /// Whether the waypoint got a response from the server (so its upstream discovery ran).
    fn upstream_answered(&self) -> bool {
        self.outcome.server_sees_it() && self.outcome.code != 0
    }

    /// What every waypoint view shares: the service's `inbound-vip` cluster and its metadata,
    /// both principals, and the client as downstream peer.
    fn waypoint_properties(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
        waypoint: &ResolvedWaypoint,
    ) -> Properties {
        let mut props = Properties::new();
        let host = to.service_host.clone().unwrap_or_default();
        let kind = match self.call.protocol {
            Protocol::Tcp => "tcp",
            _ => "http",
        };
        props.set_string(
            &["xds", "cluster_name"],
            &format!("inbound-vip|{}|{kind}|{host}", to.port),
            Phase::Request,
        );
        let services: Vec<_> = to.service_ref().into_iter().collect();
        props.set(
            &["xds", "cluster_metadata"],
            PropertyValue::Bytes(cluster_metadata(&services)),
            Phase::Request,
        );
        for (key, principal) in [
            ("io.istio.peer_principal", &from.identity),
            ("io.istio.local_principal", &waypoint.identity),
        ] {
            props.set_string(&["filter_state", key], principal, Phase::Request);
        }
        props.set(
            &["filter_state", "downstream_peer"],
            PropertyValue::Bytes(peer_filter_state(&from.wds_peer())),
            Phase::Request,
        );
        props
    }

    /// The stream a waypoint's HTTP filter chain observes for a call from `from` to `to`'s
    /// service. The outcome's flags are the waypoint's (it is the Envoy that dials the server).
    pub fn waypoint_view(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
        waypoint: &ResolvedWaypoint,
    ) -> HttpExchange {
        let mut props = self.waypoint_properties(from, to, waypoint);
        if self.upstream_answered() {
            props.set(
                &["filter_state", "upstream_peer"],
                PropertyValue::Bytes(peer_filter_state(&to.wds_peer())),
                Phase::Response,
            );
        }
        let flags = response_flag_bits(self.flags_text()).expect("flags were validated");
        self.end_of_stream_properties(&mut props, self.outcome.code, flags);
        let server = format!("{}:{}", to.ip, to.port);
        self.access_log_properties(
            &mut props,
            Connection {
                local: server.clone(),
                remote: format!("{}:{}", from.ip, CLIENT_PORT),
            },
            self.outcome.server_sees_it().then(|| Connection {
                local: format!("{}:{}", waypoint.ip, UPSTREAM_LOCAL_PORT),
                remote: server,
            }),
            None,
        );
        let request_headers = self.request_headers(Target::Workload(to));
        self.exchange_of(
            request_headers,
            self.response(self.outcome.code, None),
            props,
        )
    }

    /// The connection a waypoint's network filter chain observes for a TCP service (the
    /// metadata exchange of the chain leaves both peers before the first bytes).
    pub fn waypoint_tcp_view(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
        waypoint: &ResolvedWaypoint,
    ) -> TcpConnectionSpec {
        let mut props = self.waypoint_properties(from, to, waypoint);
        if self.outcome.server_sees_it() {
            props.set(
                &["filter_state", "upstream_peer"],
                PropertyValue::Bytes(peer_filter_state(&to.wds_peer())),
                Phase::Request,
            );
        }
        self.tcp_connection(props)
    }
}
