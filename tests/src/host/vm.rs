//! One worker VM: a wasmtime `Store` + `Instance` of the shared module, started as Envoy starts
//! a worker (`_initialize`, then per plugin: root context, `on_vm_start`, `on_configure`), then
//! driven through HTTP streams, ticks, queue notifications and call completions in Envoy's
//! callback order. HTTP streams are in `vm_http.rs`, TCP connections in `vm_tcp.rs`.
//!
//! A trap marks the VM dead (later traffic bypasses it, as with `fail_open`); it never panics
//! the host. Scheduling across VMs is the proxy's job.

use wasmtime::{Instance, Store, WasmParams, WasmResults};

use super::abi::LogLevel;
use super::http_client::HttpResponse;
use super::imports_core::log_line;
use super::module::FilterModule;
use super::plugins::Traffic;
use super::vm_state::{CallCompletion, CallResponseView, VmState};
use super::HostError;

/// Whether a VM runs the filter.
#[derive(Clone, Debug, PartialEq)]
pub enum VmStatus {
    Running,
    /// `on_vm_start` or `on_configure` returned false for a plugin: Envoy does not use it.
    Rejected(String),
    /// The VM trapped (e.g. a panic); the message includes the last critical log if any.
    Trapped(String),
}

/// A running worker VM.
pub struct WorkerVm {
    pub(super) store: Store<VmState>,
    instance: Instance,
    trapped: Option<String>,
    /// Function names of the trap's wasm backtrace, innermost first (empty without a trap).
    trap_frames: Vec<String>,
    fuel_start: u64,
}

impl WorkerVm {
    /// Instantiates the module and runs Envoy's start sequence for every root in `state.roots`,
    /// one plugin after the other.
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
            trapped: None,
            trap_frames: Vec::new(),
            fuel_start,
        };
        vm.call::<(), ()>("_initialize", 0, ());
        for index in 0..vm.store.data().roots.len() {
            vm.start_root(index);
        }
        Ok(vm)
    }

    fn start_root(&mut self, index: usize) {
        let root = self.allocate_context();
        self.store.data_mut().roots[index].context = root;
        let id = root as i32;
        self.call::<(i32, i32), ()>("proxy_on_context_create", root, (id, 0));
        let vm_config_len = self.store.data().vm_config.len() as i32;
        if self.call::<(i32, i32), i32>("proxy_on_vm_start", root, (id, vm_config_len)) == Some(0) {
            self.reject(index, "proxy_on_vm_start returned false");
        }
        let config_len = self.store.data().roots[index].plugin_config.len() as i32;
        if self.call::<(i32, i32), i32>("proxy_on_configure", root, (id, config_len)) == Some(0) {
            self.reject(index, "proxy_on_configure returned false");
        }
    }

    /// The VM's status: trapped, else the first plugin that was rejected, else running.
    pub fn status(&self) -> VmStatus {
        if let Some(message) = &self.trapped {
            return VmStatus::Trapped(message.clone());
        }
        self.store
            .data()
            .roots
            .iter()
            .find_map(|r| r.rejected.clone())
            .map_or(VmStatus::Running, VmStatus::Rejected)
    }

    /// The context id of the first running root that handles `traffic`, if the VM has not
    /// trapped. Envoy bypasses a plugin whose root was rejected.
    pub(super) fn root_for(&self, traffic: Traffic) -> Option<u32> {
        if self.trapped.is_some() {
            return None;
        }
        let root = self
            .store
            .data()
            .roots
            .iter()
            .find(|r| r.traffic == traffic)?;
        root.rejected.is_none().then_some(root.context)
    }

    /// Whether the plugin `context` belongs to still runs: the VM has not trapped and that
    /// context's root was not rejected (another plugin's rejection does not matter).
    fn runs_plugin_of(&self, context: u32) -> bool {
        let state = self.store.data();
        self.trapped.is_none()
            && state.root_id_of(context).is_some_and(|root| {
                state
                    .roots
                    .iter()
                    .any(|r| r.context == root && r.rejected.is_none())
            })
    }

    /// Context ids of the VM's roots, in start order.
    pub fn root_contexts(&self) -> Vec<u32> {
        self.store.data().roots.iter().map(|r| r.context).collect()
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

    pub(super) fn allocate_context(&mut self) -> u32 {
        let state = self.store.data_mut();
        state.next_context += 1;
        state.next_context
    }

    fn reject(&mut self, root_index: usize, reason: &str) {
        let root = &mut self.store.data_mut().roots[root_index];
        if root.rejected.is_none() {
            root.rejected = Some(format!("{reason} (root_id {:?})", root.root_id));
        }
    }

    /// Leaves the VM `left` units of fuel: it traps with [`wasmtime::Trap::OutOfFuel`] once they
    /// are spent (how [`crate::fuel_profile`] samples where fuel goes). Only for a module loaded
    /// with fuel metering.
    pub fn set_fuel_left(&mut self, left: u64) -> Result<(), HostError> {
        let consumed = self.fuel_consumed();
        self.store
            .set_fuel(left)
            .map_err(HostError::wasm("setting fuel"))?;
        self.fuel_start = consumed + left;
        Ok(())
    }

    /// Function names of the trap's wasm backtrace, innermost first, as the module names them
    /// (mangled; `?` for a function without a name). Empty unless the VM trapped.
    pub fn trap_frames(&self) -> &[String] {
        &self.trap_frames
    }

    /// The trap message if the VM has trapped.
    pub fn trap(&self) -> Option<&str> {
        self.trapped.as_deref()
    }

    /// Calls an export with `context` as the current context. A missing export is a no-op
    /// (Envoy skips callbacks a module does not export); a trap marks the VM dead.
    pub(super) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &str,
        context: u32,
        params: P,
    ) -> Option<R> {
        if self.trapped.is_some() {
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
        let frames = error
            .downcast_ref::<wasmtime::WasmBacktrace>()
            .map(|trace| {
                trace
                    .frames()
                    .iter()
                    .map(|frame| frame.func_name().unwrap_or("?").to_owned())
                    .collect()
            });
        log_line(state, worker, LogLevel::Error, message.clone());
        self.trap_frames = frames.unwrap_or_default();
        self.trapped = Some(message);
    }

    /// The time (ns since epoch) of this VM's next tick over all its roots.
    pub fn next_tick(&self) -> Option<u64> {
        if self.trapped.is_some() {
            return None;
        }
        self.store
            .data()
            .roots
            .iter()
            .filter_map(|r| r.next_tick())
            .min()
    }

    /// Fires `proxy_on_tick` on every root whose tick is due at `now` (in root order), and
    /// re-arms their timers. Returns how many fired.
    pub fn fire_due_ticks(&mut self, now: u64) -> usize {
        let mut fired = 0;
        for index in 0..self.store.data().roots.len() {
            if self.trapped.is_some() {
                break;
            }
            let root = &mut self.store.data_mut().roots[index];
            let (Some(due), Some(period)) = (root.next_tick(), root.tick_period) else {
                continue;
            };
            if due > now {
                continue;
            }
            root.next_tick_nanos = now + period.as_nanos() as u64;
            let context = root.context;
            self.call::<i32, ()>("proxy_on_tick", context, context as i32);
            fired += 1;
        }
        fired
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
        if !self.runs_plugin_of(context) {
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

    /// Delivers `proxy_on_queue_ready` to the root context that registered the queue.
    pub fn queue_ready(&mut self, root: u32, queue: u32) {
        if self.runs_plugin_of(root) {
            self.call::<(i32, i32), ()>("proxy_on_queue_ready", root, (root as i32, queue as i32));
        }
    }

    /// Calls `proxy_on_done` on every root context; returns the roots that asked to finish
    /// later with `proxy_done` (empty when all are done at once).
    pub fn begin_shutdown(&mut self) -> Vec<u32> {
        let mut pending = Vec::new();
        for root in self.root_contexts() {
            if self.call::<i32, i32>("proxy_on_done", root, root as i32) == Some(0) {
                pending.push(root);
            }
        }
        pending
    }

    /// Whether every root in `roots` has called `proxy_done`.
    pub fn called_done(&self, roots: &[u32]) -> bool {
        let done = &self.store.data().done_contexts;
        roots.iter().all(|r| done.contains(r))
    }

    /// Deletes the root contexts (`proxy_on_delete`).
    pub fn finish_shutdown(&mut self) {
        for root in self.root_contexts() {
            self.call::<i32, ()>("proxy_on_delete", root, root as i32);
        }
    }
}
