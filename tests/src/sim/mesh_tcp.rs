//! How one TCP call looks to each sidecar's network filter: the connection properties the
//! client sidecar (outbound) and the server sidecar (inbound) expose, and the data each way.
//!
//! Istio's TCP metadata exchange runs over mTLS only: with it both sides get the peer's
//! filter state (`upstream_peer` on the client, `downstream_peer` on the server) once the first
//! bytes flowed; plaintext and PassthroughCluster connections carry none. Pure construction;
//! `open_traffic.rs` drives it.

use crate::host::envoy_messages::{peer_filter_state, response_flag_bits};
use crate::host::grpc_frames::split;
use crate::host::{Phase, Properties, PropertyValue, TcpConnectionSpec};

use super::mesh::{CallInstance, ResolvedWorkload, Target};
use super::scenario::Exchange;

/// The bytes of one connection, each direction cut into the call's chunks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpData {
    /// Client → server (`on_downstream_data` on both sidecars).
    pub sent: Vec<Vec<u8>>,
    /// Server → client (`on_upstream_data` on both sidecars).
    pub received: Vec<Vec<u8>>,
}

impl CallInstance<'_> {
    fn metadata_exchange(&self, from: &ResolvedWorkload, target: Target<'_>) -> bool {
        self.mtls(from, target) && self.exchange() != Exchange::None
    }

    /// The connection the client sidecar's outbound listener sees.
    pub fn tcp_client_view(
        &self,
        from: &ResolvedWorkload,
        target: Target<'_>,
    ) -> TcpConnectionSpec {
        let mut props = Properties::new();
        self.outbound_properties(&mut props, from, target);
        if let Target::Workload(to) = target {
            if to.sidecar && self.outcome.server_sees_it() && self.metadata_exchange(from, target) {
                props.set(
                    &["filter_state", "upstream_peer"],
                    PropertyValue::Bytes(peer_filter_state(&to.peer())),
                    Phase::Response,
                );
            }
        }
        self.tcp_connection(props)
    }

    /// The connection the server sidecar's inbound listener sees, if it sees it at all.
    pub fn tcp_server_view(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
    ) -> Option<TcpConnectionSpec> {
        if !to.sidecar || !self.outcome.server_sees_it() {
            return None;
        }
        let mut props = Properties::new();
        self.inbound_properties(&mut props, from, to);
        if from.sidecar && self.metadata_exchange(from, Target::Workload(to)) {
            props.set(
                &["filter_state", "downstream_peer"],
                PropertyValue::Bytes(peer_filter_state(&from.peer())),
                Phase::Response,
            );
        }
        props.set(&["response", "flags"], PropertyValue::Uint(0), Phase::Log);
        Some(TcpConnectionSpec { properties: props })
    }

    /// The data of the connection; none when it never reached the server (the proxy does not
    /// read from downstream until the upstream connection is up).
    pub fn tcp_data(&self) -> TcpData {
        if !self.outcome.server_sees_it() {
            return TcpData::default();
        }
        let payload = |len: u64| -> Vec<u8> { (0..len).map(|i| (i % 251) as u8).collect() };
        TcpData {
            sent: split(&payload(self.request_bytes), self.call.chunks),
            received: split(&payload(self.response_bytes), self.call.chunks),
        }
    }
}

impl CallInstance<'_> {
    /// A TCP connection's spec: `props` plus the outcome's response flags, set at log time.
    pub(super) fn tcp_connection(&self, mut props: Properties) -> TcpConnectionSpec {
        let flags = response_flag_bits(self.flags_text()).expect("flags were validated");
        props.set(
            &["response", "flags"],
            PropertyValue::Uint(flags),
            Phase::Log,
        );
        TcpConnectionSpec { properties: props }
    }
}
