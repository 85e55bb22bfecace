//! What an HTTP stream looks like to the host: the request and response the proxy saw (bodies
//! as byte chunks) and the properties Envoy would expose for it, plus what the filter did.
//!
//! A description only; running it through a VM is `vm_http.rs`'s job.

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

/// An open HTTP stream in one worker VM, returned by `Proxy::open_http`.
pub type HttpHandle = super::proxy::ContextHandle;

/// One step of an open stream after its request headers, named after the callback it causes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HttpStep<'a> {
    /// A request body chunk and whether it ends the request.
    RequestBody(&'a [u8], bool),
    RequestTrailers(&'a [(String, String)]),
    /// Response headers (lower-case names, `:status` included) and whether they end the
    /// response.
    ResponseHeaders(&'a [(String, String)], bool),
    /// A response body chunk and whether it ends the response.
    ResponseBody(&'a [u8], bool),
    ResponseTrailers(&'a [(String, String)]),
}

impl HttpExchange {
    /// The steps of the whole exchange after its request headers, in Envoy's order: the last
    /// body chunk ends its direction unless trailers follow.
    pub fn steps(&self) -> Vec<HttpStep<'_>> {
        let mut steps = Vec::new();
        let trailers = self.request_trailers.is_some();
        for (i, chunk) in self.request_body.iter().enumerate() {
            let last = i + 1 == self.request_body.len();
            steps.push(HttpStep::RequestBody(chunk, last && !trailers));
        }
        if let Some(trailers) = &self.request_trailers {
            steps.push(HttpStep::RequestTrailers(trailers));
        }
        if let Some(response) = &self.response {
            let trailers = response.trailers.is_some();
            let headers_end = response.body.is_empty() && !trailers;
            steps.push(HttpStep::ResponseHeaders(&response.headers, headers_end));
            for (i, chunk) in response.body.iter().enumerate() {
                let last = i + 1 == response.body.len();
                steps.push(HttpStep::ResponseBody(chunk, last && !trailers));
            }
            if let Some(trailers) = &response.trailers {
                steps.push(HttpStep::ResponseTrailers(trailers));
            }
        }
        steps
    }
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
