//! HTTP streams through a worker VM's HTTP filter, in Envoy's callback order: create → request
//! headers → each request body chunk → request trailers → response headers → each response body
//! chunk → response trailers → done → log → delete, each body callback seeing its own chunk.
//! A stream runs at once ([`WorkerVm::run_http_stream`]) or step by step, staying open while
//! time passes and ticks fire (a long gRPC stream).
//!
//! Envoy's grpc_stats filter (when the stream has it) sits after the Wasm filter on the request
//! path and before it on the response path, so its filter state counts a request chunk once the
//! Wasm filter has seen it and a response chunk before. Only the callback sequence of one
//! stream; keeping streams open across time is the proxy's job.

use super::grpc_frames::GrpcStats;
use super::plugins::Traffic;
use super::properties::{path_key, Phase};
use super::stream::{to_pairs, HttpExchange, HttpStep, StreamOutcome};
use super::vm::WorkerVm;
use super::vm_state::StreamState;

/// Whether headers announce a gRPC body (`content-type: application/grpc*`).
fn is_grpc(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("application/grpc"))
}

impl WorkerVm {
    /// Runs one HTTP stream on the HTTP root at once, every step of `exchange` in order.
    pub fn run_http_stream(&mut self, exchange: &HttpExchange) -> StreamOutcome {
        let has_trailers = exchange.request_trailers.is_some();
        let request_eos = exchange.request_body.is_empty() && !has_trailers;
        let (ctx, mut outcome) = self.open_http_stream(exchange, request_eos);
        let Some(ctx) = ctx else {
            return outcome;
        };
        for step in exchange.steps() {
            let step_outcome = self.http_stream_step(ctx, step);
            outcome.paused_in.extend(step_outcome.paused_in);
        }
        let last = self.close_http_stream(ctx);
        outcome.paused_in.extend(last.paused_in);
        outcome.local_response = last.local_response;
        outcome.trapped = last.trapped;
        outcome
    }

    /// Opens a stream on the HTTP root with `exchange`'s request headers, properties and
    /// grpc_stats filter (its bodies and response are not used): `proxy_on_context_create` and
    /// `proxy_on_request_headers`. Returns the context id, or `None` (the outcome says
    /// bypassed) when the VM does not run an HTTP filter.
    pub fn open_http_stream(
        &mut self,
        exchange: &HttpExchange,
        end_of_stream: bool,
    ) -> (Option<u32>, StreamOutcome) {
        let mut outcome = StreamOutcome::default();
        let Some(root) = self.root_for(Traffic::Http) else {
            outcome.bypassed = true;
            return (None, outcome);
        };
        let ctx = self.allocate_context();
        let mut stream = StreamState {
            root,
            phase: Some(Phase::Request),
            request_headers: to_pairs(&exchange.request_headers),
            properties: exchange.properties.clone(),
            grpc_request: is_grpc(&exchange.request_headers),
            grpc_stats: exchange.grpc_stats_filter.then(GrpcStats::default),
            ..StreamState::default()
        };
        // Envoy's `request.time`: the stream's first byte, on the host clock unless given.
        let request_time = ["request", "time"];
        if stream
            .properties
            .lookup(&path_key(&request_time), Phase::Log)
            .is_none()
        {
            let now = self.store.data().clock.now_nanos() as i64;
            stream
                .properties
                .set_int(&request_time, now, Phase::Request);
        }
        self.store.data_mut().streams.insert(ctx, stream);
        let id = ctx as i32;
        self.call::<(i32, i32), ()>("proxy_on_context_create", ctx, (id, root as i32));
        let headers_len = exchange.request_headers.len() as i32;
        let args = (id, headers_len, i32::from(end_of_stream));
        self.action(&mut outcome, "proxy_on_request_headers", ctx, args);
        outcome.trapped = self.trap().map(str::to_string);
        (Some(ctx), outcome)
    }

    /// Delivers one step of an open stream.
    pub fn http_stream_step(&mut self, ctx: u32, step: HttpStep<'_>) -> StreamOutcome {
        let mut outcome = StreamOutcome::default();
        if !self.store.data().streams.contains_key(&ctx) || self.trap().is_some() {
            outcome.bypassed = true;
            return outcome;
        }
        let id = ctx as i32;
        match step {
            HttpStep::RequestBody(chunk, eos) => {
                self.with_stream(ctx, |s| s.request_body = chunk.to_vec());
                let args = (id, chunk.len() as i32, i32::from(eos));
                self.action(&mut outcome, "proxy_on_request_body", ctx, args);
                self.with_stream(ctx, |s| {
                    s.request_body.clear();
                    let grpc = s.grpc_request;
                    if let Some(stats) = s.grpc_stats.as_mut().filter(|_| grpc) {
                        stats.inspect_request(chunk);
                    }
                });
            }
            HttpStep::RequestTrailers(trailers) => {
                self.with_stream(ctx, |s| s.request_trailers = Some(to_pairs(trailers)));
                let args = (id, trailers.len() as i32);
                self.pausable(&mut outcome, "proxy_on_request_trailers", ctx, args);
            }
            HttpStep::ResponseHeaders(headers, eos) => {
                self.with_stream(ctx, |s| {
                    s.phase = Some(Phase::Response);
                    s.response_headers = Some(to_pairs(headers));
                    s.grpc_response = is_grpc(headers) && !eos;
                });
                let args = (id, headers.len() as i32, i32::from(eos));
                self.action(&mut outcome, "proxy_on_response_headers", ctx, args);
            }
            HttpStep::ResponseBody(chunk, eos) => {
                self.with_stream(ctx, |s| {
                    s.response_body = chunk.to_vec();
                    let grpc = s.grpc_response;
                    if let Some(stats) = s.grpc_stats.as_mut().filter(|_| grpc) {
                        stats.inspect_response(chunk);
                    }
                });
                let args = (id, chunk.len() as i32, i32::from(eos));
                self.action(&mut outcome, "proxy_on_response_body", ctx, args);
                self.with_stream(ctx, |s| s.response_body.clear());
            }
            HttpStep::ResponseTrailers(trailers) => {
                self.with_stream(ctx, |s| s.response_trailers = Some(to_pairs(trailers)));
                let args = (id, trailers.len() as i32);
                self.pausable(&mut outcome, "proxy_on_response_trailers", ctx, args);
            }
        }
        outcome.trapped = self.trap().map(str::to_string);
        outcome
    }

    /// Ends an open stream: done → log → delete, and cancels the calls it made.
    pub fn close_http_stream(&mut self, ctx: u32) -> StreamOutcome {
        let mut outcome = StreamOutcome::default();
        if !self.store.data().streams.contains_key(&ctx) {
            outcome.bypassed = true;
            return outcome;
        }
        let id = ctx as i32;
        self.with_stream(ctx, |s| s.phase = Some(Phase::Log));
        self.call::<i32, i32>("proxy_on_done", ctx, id);
        self.call::<i32, ()>("proxy_on_log", ctx, id);
        self.call::<i32, ()>("proxy_on_delete", ctx, id);
        let state = self.store.data_mut();
        state.cancel_calls_of(ctx);
        outcome.local_response = state.streams.remove(&ctx).and_then(|s| s.local_response);
        outcome.trapped = self.trap().map(str::to_string);
        outcome
    }

    /// HTTP streams still open in this VM.
    pub fn open_streams(&self) -> usize {
        self.store.data().streams.len()
    }

    fn with_stream(&mut self, ctx: u32, edit: impl FnOnce(&mut StreamState)) {
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            edit(stream);
        }
    }

    /// Calls a headers or body callback, noting a `Pause` (1).
    fn action(
        &mut self,
        outcome: &mut StreamOutcome,
        name: &'static str,
        ctx: u32,
        args: (i32, i32, i32),
    ) {
        if self.call::<(i32, i32, i32), i32>(name, ctx, args) == Some(1) {
            outcome.paused_in.push(name);
        }
    }

    /// Calls a trailers callback, noting a `Pause` (1).
    fn pausable(
        &mut self,
        outcome: &mut StreamOutcome,
        name: &'static str,
        ctx: u32,
        args: (i32, i32),
    ) {
        if self.call::<(i32, i32), i32>(name, ctx, args) == Some(1) {
            outcome.paused_in.push(name);
        }
    }
}
