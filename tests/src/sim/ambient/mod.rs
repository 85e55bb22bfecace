//! Ambient mode for the simulator: what a node's ztunnel exposes for the L4 connections it
//! proxied — its `:15020/metrics` body (`ztunnel_stats`) and its connection records
//! (`ztunnel_logs`) — from one description of each connection leg ([`L4Leg`]).
//!
//! The formats are written here from ztunnel's source (istio/ztunnel `src/proxy/metrics.rs`,
//! `src/telemetry.rs`, prometheus-client's text encoder), not through meshtap's parsers, so the
//! sink's parsing is checked against an independent writer.

pub mod ztunnel_logs;
pub mod ztunnel_stats;

/// One end of a connection as ztunnel's workload discovery (WDS) knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmbientPeer {
    /// The owner name (Deployment), `source_workload`/`destination_workload`.
    pub workload: String,
    /// The pod name, `src.workload`/`dst.workload` in the records.
    pub pod: String,
    pub namespace: String,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub service_account: String,
    pub ip: String,
    pub region: String,
    pub zone: String,
}

impl AmbientPeer {
    /// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
    pub fn principal(&self) -> String {
        format!(
            "spiffe://cluster.local/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

/// Which ztunnel counts a leg: the client's node (`source`, outbound) or the server's
/// (`destination`, inbound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// One connection leg as one ztunnel saw it (HBONE, so `mutual_tls`), with its totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L4Leg {
    pub direction: Direction,
    pub source: AmbientPeer,
    /// The actual next hop: the waypoint when the service has one.
    pub destination: AmbientPeer,
    /// The service dialled: `<name>.<namespace>.svc.cluster.local`.
    pub service: String,
    /// The port the client dialled.
    pub port: u16,
    pub connections: u64,
    /// Request direction (client → server) bytes over all connections.
    pub received_bytes: u64,
    /// Response direction bytes.
    pub sent_bytes: u64,
    /// ztunnel's flag at close: `-`, `DENY`, `CONNECT`, …
    pub response_flags: String,
}

/// The cluster id ztunnel reports (Istio's default).
pub const CLUSTER_ID: &str = "Kubernetes";
