//! What an HTTP stream looks like to the host: the request and response the proxy saw (bodies
//! as byte chunks) and the properties Envoy would expose for it, plus what the filter did.
//!
//! A description only; running it through a VM is `vm.rs`'s job.

use super::properties::Properties;

/// A response as the proxy saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseSpec {
    /// Lower-case names, `:status` included.
    pub headers: Vec<(String, String)>,
    /// Body chunks in order, each delivered by one `proxy_on_response_body`.
    pub body: Vec<Vec<u8>>,
    pub trailers: Option<Vec<(String, String)>>,
}

/// One HTTP stream through a proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpExchange {
    /// Lower-case names, pseudo-headers included.
    pub request_headers: Vec<(String, String)>,
    /// Body chunks in order, each delivered by one `proxy_on_request_body`.
    pub request_body: Vec<Vec<u8>>,
    pub request_trailers: Option<Vec<(String, String)>>,
    /// `None` when the stream ended before any response (downstream disconnect).
    pub response: Option<ResponseSpec>,
    /// `xds.*`, `request.*`, `response.*`, `connection.*`, `upstream.*`, `filter_state.*`.
    pub properties: Properties,
    /// Envoy's grpc_stats filter with `emit_filter_state` runs on this stream: the property
    /// `filter_state.envoy.filters.http.grpc_stats` follows the gRPC messages of the bodies.
    pub grpc_stats_filter: bool,
}

/// What happened to a stream in one VM.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamOutcome {
    /// The VM did not run the filter (it trapped earlier or refused its configuration): the
    /// traffic passed untouched, as with Envoy's fail-open.
    pub bypassed: bool,
    /// The VM trapped during this stream.
    pub trapped: Option<String>,
    /// Callbacks that returned `Pause` (1), by export name. The host does not hold the stream.
    pub paused_in: Vec<&'static str>,
    /// Status of a local reply the filter sent.
    pub local_response: Option<u32>,
}

pub(crate) fn to_pairs(headers: &[(String, String)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect()
}
