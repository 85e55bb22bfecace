//! One proxy (one Envoy process, one pod's sidecar): several worker VMs of one module (each
//! running every configured plugin as its own root context), the state they share, node
//! properties, the cluster table, open TCP connections and HTTP streams, and the scheduling of ticks and call
//! completions onto each VM's "thread".
//!
//! Single-threaded by design: the embedding code drives the proxy (streams, `advance`, `pump`),
//! background threads only perform HTTP calls and hand results back over a channel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::abi::LogLevel;
use super::clock::Clock;
use super::connection::TcpHandle;
use super::connection::{ConnectionOutcome, Direction, PeerType, TcpConnection, TcpConnectionSpec};
use super::envoy_messages::string_value;
use super::module::FilterModule;
use super::plugins::{PluginSpec, RootState, Traffic};
use super::properties::{Phase, Properties, PropertyValue};
use super::shared::{DispatchedCall, LogEntry, ProxyShared};
use super::stream::{HttpExchange, HttpHandle, HttpStep, StreamOutcome};
use super::vm::{VmStatus, WorkerVm};
use super::vm_state::{CallCompletion, VmState};
use super::HostError;

/// Envoy's node identity: `node.id` and `node.metadata` (with its `LABELS` map).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    /// String entries of node metadata (`WORKLOAD_NAME`, `NAMESPACE`, `NAME`, `CLUSTER_ID`, ...).
    pub metadata: BTreeMap<String, String>,
    /// `node.metadata.LABELS`.
    pub labels: BTreeMap<String, String>,
}

/// How to start a proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub vm_id: String,
    pub root_id: String,
    pub plugin_name: String,
    /// The WasmPlugin `pluginConfig`, as JSON text.
    pub plugin_config: String,
    /// What the plugin above handles (HTTP streams by default).
    pub traffic: Traffic,
    /// Further plugins loading the same module with the same VM config: Envoy runs each as
    /// another root context in every worker VM, started after the plugin above, in this order.
    pub extra_plugins: Vec<PluginSpec>,
    pub vm_config: String,
    /// WasmPlugin `vmConfig.env`.
    pub env: Vec<(String, String)>,
    pub node: NodeInfo,
    /// Worker VMs (Envoy `--concurrency`).
    pub workers: usize,
    pub clock: Clock,
    pub log_level: LogLevel,
    /// Seeds WASI `random_get` (per worker: seed + worker index).
    pub seed: u64,
    /// Clusters that exist in this proxy, with the address serving each.
    pub clusters: Vec<(String, SocketAddr)>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            vm_id: "meshtap".into(),
            root_id: "meshtap".into(),
            plugin_name: "meshtap".into(),
            plugin_config: "{}".into(),
            traffic: Traffic::Http,
            extra_plugins: Vec::new(),
            vm_config: String::new(),
            env: Vec::new(),
            node: NodeInfo::default(),
            workers: 1,
            clock: Clock::manual_now(),
            log_level: LogLevel::Info,
            seed: 1,
            clusters: Vec::new(),
        }
    }
}

/// A running proxy.
pub struct Proxy {
    module: Arc<FilterModule>,
    config: ProxyConfig,
    shared: Arc<ProxyShared>,
    node_properties: Arc<Properties>,
    vms: Vec<WorkerVm>,
    generations: Vec<u64>,
    calls_tx: Sender<CallCompletion>,
    calls_rx: Receiver<CallCompletion>,
}

/// How long `advance` waits (real time) for in-flight calls after each tick.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// An open stream or connection in one worker VM (`HttpHandle`, `TcpHandle`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextHandle {
    pub worker: usize,
    pub context: u32,
    /// The VM generation it was opened in (a replaced VM no longer knows the context).
    pub generation: u64,
}

impl Proxy {
    /// Starts `config.workers` VMs of `module`.
    pub fn start(module: Arc<FilterModule>, config: ProxyConfig) -> Result<Proxy, HostError> {
        let shared = Arc::new(ProxyShared::new(&config.vm_id));
        for (name, addr) in &config.clusters {
            shared.set_cluster(name, *addr);
        }
        let (calls_tx, calls_rx) = channel();
        let mut proxy = Proxy {
            node_properties: Arc::new(node_properties(&config)),
            module,
            shared,
            vms: Vec::new(),
            generations: vec![0; config.workers],
            calls_tx,
            calls_rx,
            config,
        };
        for worker in 0..proxy.config.workers {
            let vm = proxy.start_vm(worker)?;
            proxy.vms.push(vm);
        }
        Ok(proxy)
    }

    /// Every plugin of this proxy, the main one first.
    fn plugins(&self) -> Vec<PluginSpec> {
        let main = PluginSpec {
            root_id: self.config.root_id.clone(),
            plugin_name: self.config.plugin_name.clone(),
            plugin_config: self.config.plugin_config.clone(),
            traffic: self.config.traffic,
        };
        std::iter::once(main)
            .chain(self.config.extra_plugins.iter().cloned())
            .collect()
    }

    fn start_vm(&self, worker: usize) -> Result<WorkerVm, HostError> {
        let state = VmState {
            worker,
            generation: self.generations[worker],
            shared: self.shared.clone(),
            clock: self.config.clock.clone(),
            node_properties: self.node_properties.clone(),
            roots: self.plugins().iter().map(RootState::new).collect(),
            vm_config: self.config.vm_config.as_bytes().to_vec(),
            env: self.config.env.clone(),
            log_level: self.config.log_level,
            rng: StdRng::seed_from_u64(
                self.config.seed ^ ((worker as u64) << 32) ^ self.generations[worker],
            ),
            calls_tx: self.calls_tx.clone(),
            ..VmState::detached(self.calls_tx.clone())
        };
        WorkerVm::start(&self.module, state)
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    pub fn workers(&self) -> usize {
        self.vms.len()
    }

    pub fn vm(&self, worker: usize) -> &WorkerVm {
        &self.vms[worker]
    }

    pub fn vm_mut(&mut self, worker: usize) -> &mut WorkerVm {
        &mut self.vms[worker]
    }

    pub fn vm_statuses(&self) -> Vec<VmStatus> {
        self.vms.iter().map(WorkerVm::status).collect()
    }

    pub fn shared(&self) -> &ProxyShared {
        &self.shared
    }

    pub fn logs(&self) -> Vec<LogEntry> {
        self.shared.logs()
    }

    pub fn calls(&self) -> Vec<DispatchedCall> {
        self.shared.calls()
    }

    pub fn clock(&self) -> &Clock {
        &self.config.clock
    }

    /// Makes `cluster` exist in this proxy (or re-points it), served at `addr`.
    pub fn set_cluster(&self, cluster: &str, addr: SocketAddr) {
        self.shared.set_cluster(cluster, addr);
    }

    /// Runs one HTTP stream on `worker`, then delivers any finished calls.
    pub fn run_http_stream(&mut self, worker: usize, exchange: &HttpExchange) -> StreamOutcome {
        let outcome = self.vms[worker].run_http_stream(exchange);
        self.pump();
        outcome
    }

    /// Opens an HTTP stream on `worker` with `exchange`'s request headers and properties
    /// (`on_context_create`, `on_request_headers` with `end_of_stream`); it stays open across
    /// ticks and time, taking [`HttpStep`]s, until [`Proxy::close_http`].
    pub fn open_http(
        &mut self,
        worker: usize,
        exchange: &HttpExchange,
        end_of_stream: bool,
    ) -> Result<(HttpHandle, StreamOutcome), HostError> {
        let vm = self
            .vms
            .get_mut(worker)
            .ok_or(HostError::NoSuchWorker(worker))?;
        let (context, outcome) = vm.open_http_stream(exchange, end_of_stream);
        self.pump();
        Ok((self.handle(worker, context), outcome))
    }

    /// The handle of a context just opened on `worker`; a bypassed stream or connection gets
    /// no context, and its later steps report it bypassed too.
    fn handle(&self, worker: usize, context: Option<u32>) -> ContextHandle {
        ContextHandle {
            worker,
            context: context.unwrap_or(0),
            generation: self.generations[worker],
        }
    }

    /// Delivers one step of an open HTTP stream.
    pub fn http_step(
        &mut self,
        handle: &HttpHandle,
        step: HttpStep<'_>,
    ) -> Result<StreamOutcome, HostError> {
        self.check_generation(handle.worker, handle.generation, handle.context)?;
        let outcome = self.vms[handle.worker].http_stream_step(handle.context, step);
        self.pump();
        Ok(outcome)
    }

    /// Ends an open HTTP stream (done, log, delete).
    pub fn close_http(&mut self, handle: HttpHandle) -> Result<StreamOutcome, HostError> {
        self.check_generation(handle.worker, handle.generation, handle.context)?;
        let outcome = self.vms[handle.worker].close_http_stream(handle.context);
        self.pump();
        Ok(outcome)
    }

    /// Opens a TCP connection on `worker`'s network filter (`on_context_create`,
    /// `on_new_connection`); it stays open across ticks and time until [`Proxy::close_tcp`].
    pub fn open_tcp(
        &mut self,
        worker: usize,
        spec: &TcpConnectionSpec,
    ) -> Result<(TcpHandle, ConnectionOutcome), HostError> {
        let vm = self
            .vms
            .get_mut(worker)
            .ok_or(HostError::NoSuchWorker(worker))?;
        let (context, outcome) = vm.open_connection(spec);
        self.pump();
        Ok((self.handle(worker, context), outcome))
    }

    /// Delivers one chunk of an open connection (`on_downstream_data` / `on_upstream_data`).
    pub fn tcp_data(
        &mut self,
        handle: &TcpHandle,
        direction: Direction,
        bytes: &[u8],
        end_of_stream: bool,
    ) -> Result<ConnectionOutcome, HostError> {
        self.check_handle(handle)?;
        let vm = &mut self.vms[handle.worker];
        let outcome = vm.connection_data(handle.context, direction, bytes, end_of_stream);
        self.pump();
        Ok(outcome)
    }

    /// Closes the downstream connection (`on_downstream_connection_close(closed_by)`, then
    /// done, log, delete).
    pub fn close_tcp(
        &mut self,
        handle: TcpHandle,
        closed_by: PeerType,
    ) -> Result<ConnectionOutcome, HostError> {
        self.check_handle(&handle)?;
        let outcome = self.vms[handle.worker].close_connection(handle.context, closed_by);
        self.pump();
        Ok(outcome)
    }

    /// A whole connection at once: open, every chunk, close. The outcome merges the steps.
    pub fn run_tcp_connection(
        &mut self,
        worker: usize,
        connection: &TcpConnection,
    ) -> Result<ConnectionOutcome, HostError> {
        let (handle, mut outcome) = self.open_tcp(worker, &connection.spec)?;
        for (direction, bytes, eos) in &connection.chunks {
            let step = self.tcp_data(&handle, *direction, bytes, *eos)?;
            outcome.paused_in.extend(step.paused_in);
        }
        let last = self.close_tcp(handle, connection.closed_by)?;
        outcome.paused_in.extend(last.paused_in);
        outcome.trapped = last.trapped;
        Ok(outcome)
    }

    fn check_handle(&self, handle: &TcpHandle) -> Result<(), HostError> {
        self.check_generation(handle.worker, handle.generation, handle.context)
    }

    /// Whether a handle's VM is still the one in its worker slot.
    fn check_generation(
        &self,
        worker: usize,
        generation: u64,
        context: u32,
    ) -> Result<(), HostError> {
        match self.generations.get(worker) {
            None => Err(HostError::NoSuchWorker(worker)),
            Some(current) if *current != generation => Err(HostError::StaleConnection { context }),
            Some(_) => Ok(()),
        }
    }

    /// Fires every tick due now, in worker order and, within a VM, root order. Returns how
    /// many fired.
    pub fn fire_due_ticks(&mut self) -> usize {
        let now = self.config.clock.now_nanos();
        let fired = self.vms.iter_mut().map(|vm| vm.fire_due_ticks(now)).sum();
        self.pump();
        fired
    }

    /// Earliest pending tick over all VMs (ns since epoch).
    pub fn next_tick(&self) -> Option<u64> {
        self.vms.iter().filter_map(WorkerVm::next_tick).min()
    }

    /// Delivers call completions and queue notifications that are ready, without waiting.
    pub fn pump(&mut self) {
        while let Ok(completion) = self.calls_rx.try_recv() {
            self.deliver(completion);
        }
        for (worker, root, queue) in self.shared.take_queue_notifications() {
            if let Some(vm) = self.vms.get_mut(worker) {
                vm.queue_ready(root, queue);
            }
        }
    }

    fn deliver(&mut self, completion: CallCompletion) {
        if let Some(vm) = self.vms.get_mut(completion.worker) {
            vm.deliver_call(completion);
        }
    }

    /// HTTP calls still in flight over all VMs.
    pub fn pending_calls(&self) -> usize {
        self.vms.iter().map(WorkerVm::pending_calls).sum()
    }

    /// Waits (real time, at most `limit`) until no call is in flight, delivering completions as
    /// they arrive — including calls the callbacks themselves make. Returns false on timeout.
    pub fn settle(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        self.pump();
        while self.pending_calls() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(completion) = self.calls_rx.recv_timeout(left) {
                self.deliver(completion);
                self.pump();
            }
        }
        true
    }

    /// Moves a manual clock forward by `by`, firing every tick that falls due on the way in
    /// time order, and letting the HTTP calls each tick makes complete before time moves on.
    pub fn advance(&mut self, by: Duration) {
        let clock = self.config.clock.clone();
        let target = clock.now_nanos() + by.as_nanos() as u64;
        while let Some(due) = self.next_tick().filter(|due| *due <= target) {
            let now = clock.now_nanos();
            if due > now {
                clock.advance(Duration::from_nanos(due - now));
            }
            self.fire_due_ticks();
            self.settle(SETTLE_LIMIT);
        }
        let now = clock.now_nanos();
        if target > now {
            clock.advance(Duration::from_nanos(target - now));
        }
        self.fire_due_ticks();
        self.settle(SETTLE_LIMIT);
    }

    /// Replaces the VM of `worker` as Envoy does on a reload: `proxy_on_done` on its root
    /// contexts (waiting, at most `limit`, for `proxy_done` from those that ask for time),
    /// delete, drop, and start a new VM in the slot. Shared data and metrics survive. Refused
    /// while the VM has open TCP connections or HTTP streams (Envoy would keep the old VM for
    /// them).
    pub fn replace_vm(&mut self, worker: usize, limit: Duration) -> Result<(), HostError> {
        if worker >= self.vms.len() {
            return Err(HostError::NoSuchWorker(worker));
        }
        let open = self.vms[worker].open_connections() + self.vms[worker].open_streams();
        if open > 0 {
            return Err(HostError::OpenConnections { worker, open });
        }
        let pending = self.vms[worker].begin_shutdown();
        if !pending.is_empty() {
            let deadline = Instant::now() + limit;
            while !self.vms[worker].called_done(&pending) && Instant::now() < deadline {
                match self.calls_rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(completion) => self.deliver(completion),
                    Err(_) if self.vms[worker].pending_calls() == 0 => break,
                    Err(_) => {}
                }
            }
        }
        self.vms[worker].finish_shutdown();
        self.generations[worker] += 1;
        let vm = self.start_vm(worker)?;
        self.vms[worker] = vm;
        Ok(())
    }

    /// Linear memory of each VM in bytes.
    pub fn memory_bytes(&mut self) -> Vec<usize> {
        self.vms.iter_mut().map(WorkerVm::memory_bytes).collect()
    }
}

/// The VM-level properties Envoy serves from node metadata and the VM identity (each root adds
/// its own `plugin_root_id` and `plugin_name`).
fn node_properties(config: &ProxyConfig) -> Properties {
    let mut props = Properties::new();
    let node = &config.node;
    props.set_string(&["node", "id"], &node.id, Phase::Request);
    for (key, value) in &node.metadata {
        props.set_string(&["node", "metadata", key], value, Phase::Request);
    }
    for (key, value) in &node.labels {
        props.set_string(&["node", "metadata", "LABELS", key], value, Phase::Request);
    }
    let labels = prost_types::Struct {
        fields: node
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), string_value(v)))
            .collect(),
    };
    props.set(
        &["node", "metadata", "LABELS"],
        PropertyValue::Bytes(labels.encode_to_vec()),
        Phase::Request,
    );
    props.set_string(&["plugin_vm_id"], &config.vm_id, Phase::Request);
    props
}
