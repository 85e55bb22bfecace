//! The per-VM host state a wasmtime `Store` carries: the VM's root contexts (one per plugin,
//! each with its tick), its HTTP streams and TCP connections, its in-flight HTTP calls, and
//! handles to what the proxy shares.
//!
//! Plain data with small helpers; the import functions mutate it and the worker VM drives it.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use rand::rngs::StdRng;

use super::abi::{HeaderPairs, LogLevel};
use super::clock::Clock;
use super::connection::ConnectionState;
use super::grpc_frames::{GrpcStats, GRPC_STATS_PROPERTY};
use super::http_client::HttpResponse;
use super::plugins::RootState;
use super::properties::{Phase, Properties};
use super::shared::ProxyShared;

/// A finished `proxy_http_call`, sent from the background thread to the proxy.
#[derive(Debug)]
pub struct CallCompletion {
    pub worker: usize,
    pub generation: u64,
    pub token: u32,
    /// The response, or why there is none (delivered to the guest as 0 headers).
    pub result: Result<HttpResponse, String>,
}

/// The host side of one HTTP stream context.
#[derive(Debug, Default)]
pub struct StreamState {
    /// The root context the stream belongs to.
    pub root: u32,
    pub phase: Option<Phase>,
    pub request_headers: HeaderPairs,
    /// The chunk `proxy_on_request_body` is looking at (empty outside that callback).
    pub request_body: Vec<u8>,
    pub request_trailers: Option<HeaderPairs>,
    pub response_headers: Option<HeaderPairs>,
    /// The chunk `proxy_on_response_body` is looking at (empty outside that callback).
    pub response_body: Vec<u8>,
    pub response_trailers: Option<HeaderPairs>,
    pub properties: Properties,
    /// Status of a `proxy_send_local_response`, if the filter sent one.
    pub local_response: Option<u32>,
    /// Envoy's grpc_stats filter on this stream, when it emits filter state.
    pub grpc_stats: Option<GrpcStats>,
    /// The request headers announce gRPC (the grpc_stats filter counts request messages).
    pub grpc_request: bool,
    /// The response headers announce a gRPC body (it counts response messages).
    pub grpc_response: bool,
}

/// The response being delivered by `proxy_on_http_call_response`, readable through map types
/// 6/7 and buffer type 4 during that callback only.
#[derive(Debug, Default)]
pub struct CallResponseView {
    pub headers: HeaderPairs,
    pub body: Vec<u8>,
    pub trailers: HeaderPairs,
}

/// Everything the host keeps for one worker VM.
pub struct VmState {
    pub worker: usize,
    pub generation: u64,
    pub shared: Arc<ProxyShared>,
    pub clock: Clock,
    /// VM-level properties (`node.*`, `plugin_vm_id`).
    pub node_properties: Arc<Properties>,
    /// One root context per plugin, in start order.
    pub roots: Vec<RootState>,
    pub vm_config: Vec<u8>,
    /// The VM environment (WasmPlugin `vmConfig.env`), exposed through WASI `environ_*`.
    pub env: Vec<(String, String)>,
    pub log_level: LogLevel,
    pub rng: StdRng,
    pub next_context: u32,
    /// The context host calls act on (the callback's context unless the guest changed it).
    pub current_context: u32,
    pub streams: HashMap<u32, StreamState>,
    pub connections: HashMap<u32, ConnectionState>,
    pub call_response: Option<CallResponseView>,
    /// In-flight HTTP calls: token → context that made the call.
    pub pending_calls: HashMap<u32, u32>,
    pub next_token: u32,
    pub calls_tx: Sender<CallCompletion>,
    /// Contexts that called `proxy_done`.
    pub done_contexts: Vec<u32>,
    /// Host functions invoked so far (for benchmarks).
    pub host_calls: u64,
}

impl VmState {
    /// State for a VM slot that is not part of any proxy (used only to resolve imports).
    pub fn detached(calls_tx: Sender<CallCompletion>) -> VmState {
        use rand::SeedableRng;
        let clock = Clock::Real;
        VmState {
            worker: 0,
            generation: 0,
            shared: Arc::new(ProxyShared::new("")),
            clock,
            node_properties: Arc::new(Properties::new()),
            roots: Vec::new(),
            vm_config: Vec::new(),
            env: Vec::new(),
            log_level: LogLevel::Info,
            rng: StdRng::seed_from_u64(0),
            next_context: 0,
            current_context: 0,
            streams: HashMap::new(),
            connections: HashMap::new(),
            call_response: None,
            pending_calls: HashMap::new(),
            next_token: 0,
            calls_tx,
            done_contexts: Vec::new(),
            host_calls: 0,
        }
    }

    /// The stream the current context belongs to, if it is an HTTP context.
    pub fn current_stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.current_context)
    }

    pub fn current_stream_mut(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.current_context)
    }

    /// The connection the current context belongs to, if it is a TCP context.
    pub fn current_connection(&self) -> Option<&ConnectionState> {
        self.connections.get(&self.current_context)
    }

    /// Whether `context` exists in this VM.
    pub fn has_context(&self, context: u32) -> bool {
        self.roots.iter().any(|r| r.context == context)
            || self.streams.contains_key(&context)
            || self.connections.contains_key(&context)
    }

    /// The root context id `context` belongs to (itself for a root).
    pub fn root_id_of(&self, context: u32) -> Option<u32> {
        if let Some(stream) = self.streams.get(&context) {
            return Some(stream.root);
        }
        if let Some(connection) = self.connections.get(&context) {
            return Some(connection.root);
        }
        self.roots
            .iter()
            .any(|r| r.context == context)
            .then_some(context)
    }

    /// The root (plugin) of the current context.
    pub fn current_root(&self) -> Option<&RootState> {
        let root = self.root_id_of(self.current_context)?;
        self.roots.iter().find(|r| r.context == root)
    }

    pub fn current_root_mut(&mut self) -> Option<&mut RootState> {
        let root = self.root_id_of(self.current_context)?;
        self.roots.iter_mut().find(|r| r.context == root)
    }

    /// A property as the current context sees it: its stream's or connection's own
    /// properties (and the grpc_stats filter state), then its plugin's, then the node's.
    pub fn property(&self, key: &str) -> Option<Vec<u8>> {
        let own = if let Some(stream) = self.current_stream() {
            let grpc_stats = (key == GRPC_STATS_PROPERTY)
                .then(|| stream.grpc_stats.as_ref()?.filter_state())
                .flatten();
            grpc_stats.or_else(|| {
                stream
                    .properties
                    .lookup(key, stream.phase.unwrap_or(Phase::Request))
            })
        } else if let Some(connection) = self.current_connection() {
            connection.properties.lookup(key, connection.phase)
        } else {
            None
        };
        own.or_else(|| self.current_root()?.properties.lookup(key, Phase::Request))
            .or_else(|| self.node_properties.lookup(key, Phase::Request))
    }

    /// Drops in-flight calls made by `context` (Envoy cancels them when the context goes away).
    pub fn cancel_calls_of(&mut self, context: u32) {
        self.pending_calls.retain(|_, owner| *owner != context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_context_cancels_only_its_calls() {
        let (tx, _rx) = std::sync::mpsc::channel();
        let mut state = VmState::detached(tx);
        state.roots.push(RootState {
            context: 1,
            ..RootState::new(&crate::host::plugins::PluginSpec {
                root_id: "r".into(),
                plugin_name: "r".into(),
                plugin_config: "{}".into(),
                traffic: crate::host::plugins::Traffic::Http,
            })
        });
        state.streams.insert(
            2,
            StreamState {
                root: 1,
                ..StreamState::default()
            },
        );
        state.pending_calls.insert(10, 1);
        state.pending_calls.insert(11, 2);
        state.pending_calls.insert(12, 2);
        state.cancel_calls_of(2);
        assert_eq!(
            state.pending_calls.keys().copied().collect::<Vec<_>>(),
            vec![10]
        );
        assert!(state.has_context(1) && state.has_context(2) && !state.has_context(3));
        assert_eq!(state.root_id_of(2), Some(1));
        assert_eq!(state.root_id_of(3), None);
    }
}
