//! The connection legs ztunnels count for one call (istio-ambient notes §0): the client's
//! node ztunnel counts the outbound leg when the client is ambient (`reporter="source"`, the
//! destination being the actual next hop: the waypoint when the service has one), the server's
//! node ztunnel the inbound leg when the server is ambient and the call reached it
//! (`reporter="destination"`, the source being the waypoint when there is one). Waypoint pods
//! are not captured, so there is no leg into or out of a waypoint on the waypoint's side.
//!
//! A leg is HBONE (`mutual_tls`) when both its ends speak it (ambient pods and waypoints);
//! ztunnel carries plain TCP to or from a sidecar or an out-of-mesh pod. Every call is one
//! connection per leg. Pure values; the cluster keeps the totals.

use super::{Direction, L4Leg};
use crate::sim::waypoint::ResolvedWaypoint;
use crate::sim::workload::ResolvedWorkload;

/// One call's path as far as ztunnels see it.
pub struct L4Call<'a> {
    pub from: &'a ResolvedWorkload,
    pub to: &'a ResolvedWorkload,
    pub waypoint: Option<&'a ResolvedWaypoint>,
    /// The call reached the server.
    pub reached: bool,
    /// Client → server bytes on the wire.
    pub request_bytes: u64,
    /// Server → client bytes on the wire.
    pub response_bytes: u64,
}

/// `(node, leg)` for every ztunnel that counts the call.
pub fn call_legs(call: &L4Call<'_>) -> Vec<(String, L4Leg)> {
    let (from, to) = (call.from, call.to);
    let service = to.service_host.clone().unwrap_or_default();
    let leg = |direction, source, destination, mtls| L4Leg {
        direction,
        source,
        destination,
        service: service.clone(),
        port: to.port,
        connections: 1,
        received_bytes: call.request_bytes,
        sent_bytes: call.response_bytes,
        response_flags: "-".into(),
        mtls,
    };
    let mut legs = Vec::new();
    if from.ambient() {
        let (next_hop, hbone) = match call.waypoint {
            Some(waypoint) => (waypoint.ambient_peer(), true),
            None => (to.ambient_peer(), to.ambient()),
        };
        let outbound = leg(Direction::Outbound, from.ambient_peer(), next_hop, hbone);
        legs.push((from.node.clone(), outbound));
    }
    if to.ambient() && call.reached {
        let (previous_hop, hbone) = match call.waypoint {
            Some(waypoint) => (waypoint.ambient_peer(), true),
            None => (from.ambient_peer(), from.ambient()),
        };
        let inbound = leg(Direction::Inbound, previous_hop, to.ambient_peer(), hbone);
        legs.push((to.node.clone(), inbound));
    }
    legs
}
