//! Ambient mode for the simulator: what a node's ztunnel exposes for the L4 connections it
//! proxied — its `:15020/metrics` body (`ztunnel_stats`) and its connection records
//! (`ztunnel_logs`) — from one description of each connection leg ([`L4Leg`]).
//!
//! The formats are written here from ztunnel's source (istio/ztunnel `src/proxy/metrics.rs`,
//! `src/telemetry.rs`, prometheus-client's text encoder), not through meshtap's parsers, so the
//! sink's parsing is checked against an independent writer.

pub mod legs;
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
    /// `spiffe://<trust domain>/ns/<ns>/sa/<service account>`, as WDS computes it.
    pub identity: String,
    /// `CLUSTER_ID` of the workload.
    pub cluster: String,
    pub ip: String,
    /// Locality; empty when the node has no topology labels (encoded `unknown`).
    pub region: String,
    pub zone: String,
}

/// Which ztunnel counts a leg: the client's node (`source`, outbound) or the server's
/// (`destination`, inbound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

/// One connection leg as one ztunnel saw it, with its totals.
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
    /// HBONE (`mutual_tls`, the source's identity known from its certificate); `false` for
    /// plain TCP to or from a pod that does not speak HBONE (`unknown` policy and source
    /// principal).
    pub mtls: bool,
}
