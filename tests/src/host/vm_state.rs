//! The per-VM host state a wasmtime `Store` carries: the VM's contexts and streams, its tick,
//! its in-flight HTTP calls, and handles to what the proxy shares.
//!
//! Plain data with small helpers; the import functions mutate it and the worker VM drives it.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;

use super::abi::{HeaderPairs, LogLevel};
use super::clock::Clock;
use super::http_client::HttpResponse;
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
    pub phase: Option<Phase>,
    pub request_headers: HeaderPairs,
    pub request_body: Vec<u8>,
    pub request_trailers: Option<HeaderPairs>,
    pub response_headers: Option<HeaderPairs>,
    pub response_body: Vec<u8>,
    pub response_trailers: Option<HeaderPairs>,
    pub properties: Properties,
    /// Status of a `proxy_send_local_response`, if the filter sent one.
    pub local_response: Option<u32>,
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
    /// Root-level properties (`node.*`, `plugin_*`).
    pub node_properties: Arc<Properties>,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    /// The VM environment (WasmPlugin `vmConfig.env`), exposed through WASI `environ_*`.
    pub env: Vec<(String, String)>,
    pub log_level: LogLevel,
    pub rng: StdRng,
    pub root_context: u32,
    pub next_context: u32,
    /// The context host calls act on (the callback's context unless the guest changed it).
    pub current_context: u32,
    pub streams: HashMap<u32, StreamState>,
    pub tick_period: Option<Duration>,
    pub next_tick_nanos: u64,
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
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            env: Vec::new(),
            log_level: LogLevel::Info,
            rng: StdRng::seed_from_u64(0),
            root_context: 0,
            next_context: 0,
            current_context: 0,
            streams: HashMap::new(),
            tick_period: None,
            next_tick_nanos: 0,
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

    /// Whether `context` exists in this VM.
    pub fn has_context(&self, context: u32) -> bool {
        context == self.root_context || self.streams.contains_key(&context)
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
        state.root_context = 1;
        state.streams.insert(2, StreamState::default());
        state.pending_calls.insert(10, 1);
        state.pending_calls.insert(11, 2);
        state.pending_calls.insert(12, 2);
        state.cancel_calls_of(2);
        assert_eq!(
            state.pending_calls.keys().copied().collect::<Vec<_>>(),
            vec![10]
        );
        assert!(state.has_context(1) && state.has_context(2) && !state.has_context(3));
    }
}
