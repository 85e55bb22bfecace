//! [`RequestFacts`]: everything the filter learned about one finished HTTP stream, as plain
//! data. The plugin glue fills it from host calls in `on_log`; [`crate::record::labels`] and
//! [`crate::store::aggregate`] consume it. It holds borrowed values so the glue can reuse its buffers.
//!
//! This module must stay free of host calls and of Istio's label rules.

use crate::record::peer::{ClusterServices, PeerInfo};

/// Listener direction as Envoy reports it in `xds.listener_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// Envoy's `envoy.config.core.v3.TrafficDirection` value: 1 inbound, 2 outbound.
    pub(crate) fn from_envoy(value: i64) -> Option<Direction> {
        match value {
            1 => Some(Direction::Inbound),
            2 => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// The facts of one HTTP stream, read at access-log time.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// `xds.cluster_name`, `None` without an upstream cluster.
    pub cluster_name: Option<&'a str>,
    /// `xds.route_name` (only read when it can matter: no Istio service on the cluster).
    pub route_name: Option<&'a str>,
    /// `istio.services[0]` from the cluster metadata.
    pub services: Option<&'a ClusterServices>,
    /// The downstream peer (server side and waypoints).
    pub downstream_peer: Option<&'a PeerInfo>,
    /// The upstream peer (client side and waypoints), possibly from endpoint metadata.
    pub upstream_peer: Option<&'a PeerInfo>,
    /// `connection.uri_san_peer_certificate`.
    pub downstream_peer_san: &'a str,
    /// `connection.uri_san_local_certificate`.
    pub downstream_local_san: &'a str,
    /// `upstream.uri_san_peer_certificate`.
    pub upstream_peer_san: &'a str,
    /// `upstream.uri_san_local_certificate`.
    pub upstream_local_san: &'a str,
    /// The request's `:authority` (read only when the host-header fallback applies).
    pub authority: Option<&'a str>,
    /// Request `content-type` starts with `application/grpc`.
    pub grpc: bool,
    /// `response.code`, `None` when no response was sent.
    pub response_code: Option<i64>,
    /// `response.flags`.
    pub response_flags: u64,
    /// gRPC status from `response.grpc_status`, else trailers/headers `grpc-status`.
    pub grpc_status: Option<i64>,
}

/// Whether a request `content-type` marks gRPC (Envoy's `isGrpcRequestHeaders`).
pub(crate) fn is_grpc_content_type(content_type: &[u8]) -> bool {
    // Compared as one 16-byte word: `starts_with` goes through a byte-at-a-time `memcmp` in
    // wasm, a dozen steps for every `application/...` request.
    const GRPC: &[u8; 16] = b"application/grpc";
    content_type
        .first_chunk::<16>()
        .is_some_and(|head| u128::from_le_bytes(*head) == u128::from_le_bytes(*GRPC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reads_envoy_directions_and_grpc() {
        assert_eq!(Direction::from_envoy(1), Some(Direction::Inbound));
        assert_eq!(Direction::from_envoy(2), Some(Direction::Outbound));
        assert_eq!(Direction::from_envoy(0), None);
        assert!(is_grpc_content_type(b"application/grpc"));
        assert!(is_grpc_content_type(b"application/grpc+proto"));
        assert!(!is_grpc_content_type(b"application/json"));
    }
}
