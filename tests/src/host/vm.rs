//! One worker VM: a wasmtime `Store` + `Instance` of the shared module, started as Envoy starts
//! a worker (`_initialize`, root context, `on_vm_start`, `on_configure`), then driven through
//! HTTP streams, ticks and call completions in Envoy's callback order.
//!
//! A trap marks the VM dead (later traffic bypasses it, as with `fail_open`); it never panics
//! the host. Scheduling across VMs is the proxy's job.

use wasmtime::{Instance, Store, WasmParams, WasmResults};

use super::abi::LogLevel;
use super::http_client::HttpResponse;
use super::imports_core::log_line;
use super::module::FilterModule;
use super::properties::{path_key, Phase};
use super::stream::{to_pairs, HttpExchange, StreamOutcome};
use super::vm_state::{CallCompletion, CallResponseView, StreamState, VmState};
use super::HostError;

/// Whether a VM runs the filter.
#[derive(Clone, Debug, PartialEq)]
pub enum VmStatus {
    Running,
    /// `on_vm_start` or `on_configure` returned false: Envoy does not use this plugin.
    Rejected(String),
    /// The VM trapped (e.g. a panic); the message includes the last critical log if any.
    Trapped(String),
}

/// A running worker VM.
pub struct WorkerVm {
    store: Store<VmState>,
    instance: Instance,
    status: VmStatus,
    fuel_start: u64,
}

impl WorkerVm {
    /// Instantiates the module and runs Envoy's start sequence.
    pub fn start(module: &FilterModule, state: VmState) -> Result<WorkerVm, HostError> {
        let mut store = Store::new(&module.engine, state);
        let fuel_start = if module.consumes_fuel() {
            store
                .set_fuel(u64::MAX)
                .map_err(HostError::wasm("setting fuel"))?;
            u64::MAX
        } else {
            0
        };
        let instance = module
            .linker
            .instantiate(&mut store, &module.module)
            .map_err(HostError::wasm("instantiating the module"))?;
        let mut vm = WorkerVm {
            store,
            instance,
            status: VmStatus::Running,
            fuel_start,
        };
        vm.call::<(), ()>("_initialize", 0, ());
        let root = vm.allocate_context();
        vm.store.data_mut().root_context = root;
        vm.call::<(i32, i32), ()>("proxy_on_context_create", root, (root as i32, 0));
        let vm_config_len = vm.store.data().vm_config.len() as i32;
        if vm.call::<(i32, i32), i32>("proxy_on_vm_start", root, (root as i32, vm_config_len))
            == Some(0)
        {
            vm.reject("proxy_on_vm_start returned false");
        }
        let plugin_config_len = vm.store.data().plugin_config.len() as i32;
        if vm.call::<(i32, i32), i32>("proxy_on_configure", root, (root as i32, plugin_config_len))
            == Some(0)
        {
            vm.reject("proxy_on_configure returned false");
        }
        Ok(vm)
    }

    pub fn status(&self) -> &VmStatus {
        &self.status
    }

    pub fn is_running(&self) -> bool {
        self.status == VmStatus::Running
    }

    pub fn state(&self) -> &VmState {
        self.store.data()
    }

    /// Current size of the VM's linear memory in bytes.
    pub fn memory_bytes(&mut self) -> usize {
        self.instance
            .get_memory(&mut self.store, "memory")
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// Wasm fuel consumed since start (0 unless the module was loaded with fuel metering).
    pub fn fuel_consumed(&self) -> u64 {
        self.store
            .get_fuel()
            .map_or(0, |left| self.fuel_start - left)
    }

    fn allocate_context(&mut self) -> u32 {
        let state = self.store.data_mut();
        state.next_context += 1;
        state.next_context
    }

    fn reject(&mut self, reason: &str) {
        if self.status == VmStatus::Running {
            self.status = VmStatus::Rejected(reason.to_string());
        }
    }

    /// Calls an export with `context` as the current context. A missing export is a no-op
    /// (Envoy skips callbacks a module does not export); a trap marks the VM dead.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
        context: u32,
        params: P,
    ) -> Option<R> {
        if matches!(self.status, VmStatus::Trapped(_)) {
            return None;
        }
        self.instance.get_export(&mut self.store, name)?;
        self.store.data_mut().current_context = context;
        let result = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .and_then(|f| f.call(&mut self.store, params));
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.record_trap(name, &error);
                None
            }
        }
    }

    fn record_trap(&mut self, export: &str, error: &wasmtime::Error) {
        let state = self.store.data();
        let worker = state.worker;
        let panic = state
            .shared
            .logs()
            .into_iter()
            .rev()
            .find(|l| l.worker == worker && l.level == LogLevel::Critical)
            .map(|l| format!(" (last critical log: {})", l.message))
            .unwrap_or_default();
        let message = format!("trap in {export}: {error:#}{panic}");
        log_line(state, worker, LogLevel::Error, message.clone());
        self.status = VmStatus::Trapped(message);
    }

    /// Runs one HTTP stream in Envoy's order: create → request headers/body/trailers →
    /// response headers/body/trailers → done → log → delete.
    pub fn run_http_stream(&mut self, exchange: &HttpExchange) -> StreamOutcome {
        let mut outcome = StreamOutcome::default();
        if !self.is_running() {
            outcome.bypassed = true;
            return outcome;
        }
        let root = self.store.data().root_context;
        let ctx = self.allocate_context();
        let mut stream = StreamState {
            phase: Some(Phase::Request),
            request_headers: to_pairs(&exchange.request_headers),
            properties: exchange.properties.clone(),
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
        stream.request_body = vec![b'x'; exchange.request_body_len];
        self.store.data_mut().streams.insert(ctx, stream);
        let id = ctx as i32;
        self.call::<(i32, i32), ()>("proxy_on_context_create", ctx, (id, root as i32));

        let has_body = exchange.request_body_len > 0;
        let has_trailers = exchange.request_trailers.is_some();
        let headers_len = exchange.request_headers.len() as i32;
        let eos = i32::from(!has_body && !has_trailers);
        self.action(
            &mut outcome,
            "proxy_on_request_headers",
            ctx,
            (id, headers_len, eos),
        );
        if has_body {
            let len = exchange.request_body_len as i32;
            self.action(
                &mut outcome,
                "proxy_on_request_body",
                ctx,
                (id, len, i32::from(!has_trailers)),
            );
        }
        if let Some(trailers) = &exchange.request_trailers {
            self.with_stream(ctx, |s| s.request_trailers = Some(to_pairs(trailers)));
            let n = trailers.len() as i32;
            if self.call::<(i32, i32), i32>("proxy_on_request_trailers", ctx, (id, n)) == Some(1) {
                outcome.paused_in.push("proxy_on_request_trailers");
            }
        }
        if let Some(response) = &exchange.response {
            let has_body = response.body_len > 0;
            let has_trailers = response.trailers.is_some();
            self.with_stream(ctx, |s| {
                s.phase = Some(Phase::Response);
                s.response_headers = Some(to_pairs(&response.headers));
                s.response_body = vec![b'x'; response.body_len];
            });
            let eos = i32::from(!has_body && !has_trailers);
            let n = response.headers.len() as i32;
            self.action(&mut outcome, "proxy_on_response_headers", ctx, (id, n, eos));
            if has_body {
                let len = response.body_len as i32;
                self.action(
                    &mut outcome,
                    "proxy_on_response_body",
                    ctx,
                    (id, len, i32::from(!has_trailers)),
                );
            }
            if let Some(trailers) = &response.trailers {
                self.with_stream(ctx, |s| s.response_trailers = Some(to_pairs(trailers)));
                let n = trailers.len() as i32;
                if self.call::<(i32, i32), i32>("proxy_on_response_trailers", ctx, (id, n))
                    == Some(1)
                {
                    outcome.paused_in.push("proxy_on_response_trailers");
                }
            }
        }
        self.with_stream(ctx, |s| s.phase = Some(Phase::Log));
        self.call::<i32, i32>("proxy_on_done", ctx, id);
        self.call::<i32, ()>("proxy_on_log", ctx, id);
        self.call::<i32, ()>("proxy_on_delete", ctx, id);
        let state = self.store.data_mut();
        state.cancel_calls_of(ctx);
        outcome.local_response = state.streams.remove(&ctx).and_then(|s| s.local_response);
        if let VmStatus::Trapped(message) = &self.status {
            outcome.trapped = Some(message.clone());
        }
        outcome
    }

    fn with_stream(&mut self, ctx: u32, edit: impl FnOnce(&mut StreamState)) {
        if let Some(stream) = self.store.data_mut().streams.get_mut(&ctx) {
            edit(stream);
        }
    }

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

    /// The time (ns since epoch) of this VM's next tick, if it has a tick period.
    pub fn next_tick(&self) -> Option<u64> {
        let state = self.store.data();
        (self.is_running() && state.tick_period.is_some()).then_some(state.next_tick_nanos)
    }

    /// Fires `proxy_on_tick` if it is due at `now`, and re-arms the timer.
    pub fn tick_if_due(&mut self, now: u64) -> bool {
        match self.next_tick() {
            Some(due) if due <= now => {
                let state = self.store.data_mut();
                let period = state.tick_period.expect("tick period is set").as_nanos() as u64;
                state.next_tick_nanos = now + period;
                let root = state.root_context;
                self.call::<i32, ()>("proxy_on_tick", root, root as i32);
                true
            }
            _ => false,
        }
    }

    /// Number of HTTP calls still in flight (not cancelled).
    pub fn pending_calls(&self) -> usize {
        self.store.data().pending_calls.len()
    }

    /// Delivers a finished call as `proxy_on_http_call_response`; calls that were cancelled or
    /// belong to a previous VM in this slot are dropped.
    pub fn deliver_call(&mut self, completion: CallCompletion) {
        let state = self.store.data_mut();
        if completion.generation != state.generation {
            return;
        }
        let Some(context) = state.pending_calls.remove(&completion.token) else {
            return;
        };
        if !self.is_running() {
            return;
        }
        let view = match completion.result {
            Ok(HttpResponse { headers, body }) => CallResponseView {
                headers,
                body,
                trailers: Vec::new(),
            },
            Err(reason) => {
                tracing::debug!(token = completion.token, %reason, "http call failed");
                CallResponseView::default()
            }
        };
        let args = (
            context as i32,
            completion.token as i32,
            view.headers.len() as i32,
            view.body.len() as i32,
            view.trailers.len() as i32,
        );
        self.store.data_mut().call_response = Some(view);
        self.call::<(i32, i32, i32, i32, i32), ()>("proxy_on_http_call_response", context, args);
        self.store.data_mut().call_response = None;
    }

    /// Delivers `proxy_on_queue_ready` to the root context.
    pub fn queue_ready(&mut self, root: u32, queue: u32) {
        if self.is_running() && root == self.store.data().root_context {
            self.call::<(i32, i32), ()>("proxy_on_queue_ready", root, (root as i32, queue as i32));
        }
    }

    /// Calls `proxy_on_done` on the root context; `true` when the VM is done at once,
    /// `false` when it asked to finish later with `proxy_done`.
    pub fn begin_shutdown(&mut self) -> bool {
        let root = self.store.data().root_context;
        self.call::<i32, i32>("proxy_on_done", root, root as i32) != Some(0)
    }

    /// Whether the root context has called `proxy_done`.
    pub fn root_called_done(&self) -> bool {
        let state = self.store.data();
        state.done_contexts.contains(&state.root_context)
    }

    /// Deletes the root context (`proxy_on_delete`).
    pub fn finish_shutdown(&mut self) {
        let root = self.store.data().root_context;
        self.call::<i32, ()>("proxy_on_delete", root, root as i32);
    }
}
