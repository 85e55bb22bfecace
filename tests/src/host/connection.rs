//! What a TCP connection through a network filter looks like to the host: its properties, the
//! data chunks each way, who closed it, and the per-connection state a VM keeps while it is
//! open.
//!
//! A description only; Envoy's callback order for it lives in `vm_tcp.rs`.

use super::properties::{Phase, Properties};

/// Which way a chunk travels, named after the proxy-wasm callback that sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Read from the downstream connection (`proxy_on_downstream_data`, buffer type 2).
    Downstream,
    /// Written to the downstream connection, i.e. coming from upstream
    /// (`proxy_on_upstream_data`, buffer type 3).
    Upstream,
}

/// `proxy_peer_type_t`: who closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerType {
    Unknown = 0,
    /// The proxy closed it.
    Local = 1,
    /// The peer closed it.
    Remote = 2,
}

/// One TCP connection through a proxy's network filter chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpConnectionSpec {
    /// `xds.*`, `connection.*`, `upstream.*`, `source.*`, `destination.*`, `filter_state.*`.
    /// Entries for `Phase::Response` become visible with the first data callback (e.g. the
    /// peer from Istio's TCP metadata exchange, whose header comes with the first bytes),
    /// `Phase::Log` ones at the close (`response.flags`, ...).
    pub properties: Properties,
}

/// A whole connection: spec, chunks in order, and who closed the downstream side.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConnection {
    pub spec: TcpConnectionSpec,
    /// `(direction, bytes, end_of_stream)` in the order the proxy sees them.
    pub chunks: Vec<(Direction, Vec<u8>, bool)>,
    pub closed_by: PeerType,
}

/// An open connection in one worker VM, returned by `Proxy::open_tcp`.
pub type TcpHandle = super::proxy::ContextHandle;

/// What happened to a connection (or one step of it) in one VM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionOutcome {
    /// The VM did not run the network filter (trapped earlier, or its NETWORK root refused its
    /// configuration, or it has none): traffic passed untouched.
    pub bypassed: bool,
    pub trapped: Option<String>,
    /// Callbacks that returned `Pause` (StopIteration), by export name.
    pub paused_in: Vec<&'static str>,
}

/// The host side of one open connection context.
#[derive(Debug, Default)]
pub struct ConnectionState {
    pub root: u32,
    pub phase: Phase,
    pub properties: Properties,
    /// The chunk `proxy_on_downstream_data` is looking at (empty outside that callback).
    pub downstream_data: Vec<u8>,
    /// The chunk `proxy_on_upstream_data` is looking at (empty outside that callback).
    pub upstream_data: Vec<u8>,
}
