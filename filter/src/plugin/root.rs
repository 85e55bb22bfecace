//! The root context of one VM: configuration, the report tick, the report call and shutdown.
//!
//! `on_configure` parses the pluginConfig (a bad one is logged once and the filter then passes
//! traffic untouched), reads the node metadata and sets a first tick 1 s later; nothing
//! network-related happens there. Each tick the VM publishes its totals to shared data and, if
//! it holds the lease ([`crate::proxy::coordinate`]), builds and dispatches the proxy's report (at most
//! one in flight per VM). Before publishing, the VM moves the new counts of its open TCP
//! connections and gRPC streams ([`super::grpc_stream`]) into its totals and applies the leader's
//! latest idle-series eviction to them; the leader tracks idle sets and decides the next eviction
//! ([`crate::proxy::evict`]). `on_done` publishes a last snapshot. The same root serves an `HTTP` or
//! a `NETWORK` WasmPlugin (`pluginConfig.type`): it hands out request or connection contexts,
//! and coordinates and reports on that type's own channel. It must not record requests or
//! connections (that is [`super::http`] and [`super::tcp`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MapType, Status};

use super::access_log::{self, LogsInFlight};
use super::grpc_stream;
use super::host::{log, now_ms, string_property_at, HostStore};
use super::http::RequestRecorder;
use super::tcp::ConnectionRecorder;
use super::vm::ActiveVm;
use crate::config::{FilterConfig, PluginType};
use crate::proxy::coordinate::{self, Collected, Role, LEASE_INTERVALS, STALE_INTERVALS};
use crate::proxy::evict::EvictionView;
use crate::proxy::idle::IdleTracker;
use crate::proxy::wire::TotalsPb;
use crate::record::node::LocalNode;
use crate::report::{self, ReportContext};

/// Delay of the first tick after configuration.
const FIRST_TICK: Duration = Duration::from_secs(1);
/// At most one report-failure log line per this many milliseconds.
const FAILURE_LOG_EVERY_MS: i64 = 60_000;

/// One VM's root context.
#[derive(Default)]
pub(crate) struct MeshtapRoot {
    context_id: u32,
    plugin_type: PluginType,
    vm: Option<Rc<RefCell<ActiveVm>>>,
    uid: Option<u64>,
    interval_set: bool,
    in_flight: Option<u32>,
    last_failure_log_ms: Option<i64>,
    failures_not_logged: u64,
    logs_in_flight: LogsInFlight,
    eviction: EvictionView,
    /// When each proxy-wide label set last changed; kept while this VM leads.
    idle: IdleTracker,
}

impl Context for MeshtapRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        if self.in_flight != Some(token) {
            return;
        }
        self.in_flight = None;
        if num_headers == 0 {
            self.report_failed("no response from the sink (timeout, refused or reset)".into());
            return;
        }
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(s) if (200..300).contains(&s) => self.logs_in_flight.delivered(),
            other => {
                let body =
                    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(256))
                        .ok()
                        .flatten()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                let status = other.map_or("no :status".to_string(), |s| s.to_string());
                self.report_failed(format!("sink answered {status}: {body}"));
            }
        }
    }

    fn on_done(&mut self) -> bool {
        if let Some(vm) = &self.vm {
            access_log::on_done(&mut vm.borrow_mut(), &mut self.logs_in_flight);
        }
        if let (Some(vm), Some(uid)) = (&self.vm, self.uid) {
            let mut vm = vm.borrow_mut();
            vm.flush_open_connections();
            grpc_stream::flush_open_streams(&mut vm, self.context_id);
            let totals = TotalsPb::from_vm(&vm.totals, &vm.counters, vm.label_caps.capped());
            let applied = self.eviction.applied_epoch;
            coordinate::publish(&self.store(), uid, now_ms(), totals, applied);
        }
        true
    }
}

impl RootContext for MeshtapRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        // A reconfigured VM starts over under a new uid; its old snapshot stops beating and is
        // folded into the base by the leader, so counters neither drop nor double.
        self.uid = None;
        let json = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.plugin_type = PluginType::of_config(&json);
        let mut config = match FilterConfig::parse(&json, |var| std::env::var(var).ok()) {
            Ok(c) => c,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("meshtap: {e}; the filter is disabled and passes traffic untouched"),
                );
                self.vm = None;
                return true;
            }
        };
        let local = LocalNode::read(string_property_at);
        super::dimensions::resolve_node_metadata(&mut config.dimensions);
        self.vm = Some(Rc::new(RefCell::new(ActiveVm::new(config, local))));
        self.interval_set = false;
        let _ = hostcalls::set_tick_period(FIRST_TICK);
        true
    }

    fn on_tick(&mut self) {
        let Some(vm) = self.vm.clone() else {
            return;
        };
        self.bring_totals_up_to_date(&vm);
        let turn = match self.publish_and_take_turn(&vm.borrow()) {
            Turn::Lead(turn) => turn,
            Turn::StartOver => return self.start_over(),
            Turn::Wait => return,
        };
        let vm = vm.borrow();
        let Some(collected) = self.collect(&vm, &turn) else {
            return;
        };
        let report = report::build(self.report_context(&vm, &turn), &collected);
        let access_logs = self.logs_in_flight.gather(&vm.config);
        let (body, carried) = report::encode(report, access_logs);
        if let Some(records) = carried {
            self.logs_in_flight.hold(records);
        }
        let sent = dispatch_report(&vm, &body);
        let cluster = vm.config.sink_cluster.clone();
        drop(vm);
        match sent {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => self.report_failed(format!(
                "cannot dispatch to cluster {cluster:?} ({status:?}; is the cluster known to this proxy?)"
            )),
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.vm {
            Some(vm) => Box::new(RequestRecorder::new(vm.clone(), context_id)),
            None => Box::new(Passthrough),
        })
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(match &self.vm {
            Some(vm) => Box::new(ConnectionRecorder::new(vm.clone())),
            None => Box::new(Passthrough),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(match self.plugin_type {
            PluginType::Http => ContextType::HttpContext,
            PluginType::Network => ContextType::StreamContext,
        })
    }
}

impl MeshtapRoot {
    /// The root context `context_id`, not configured yet.
    pub(crate) fn new(context_id: u32) -> Self {
        MeshtapRoot {
            context_id,
            ..MeshtapRoot::default()
        }
    }

    /// Shared data under this plugin type's own keys.
    fn store(&self) -> HostStore {
        match self.plugin_type {
            PluginType::Http => HostStore::HTTP,
            PluginType::Network => HostStore::NETWORK,
        }
    }

    /// The report channel of this plugin type.
    fn channel(&self) -> &'static str {
        match self.plugin_type {
            PluginType::Http => meshtap_report::CHANNEL_HTTP,
            PluginType::Network => meshtap_report::CHANNEL_TCP,
        }
    }

    /// Moves the new counts of open connections and gRPC streams into the totals, hands the
    /// buffered access-log records to the queue and applies the leader's latest eviction.
    fn bring_totals_up_to_date(&mut self, vm: &RefCell<ActiveVm>) {
        vm.borrow_mut().flush_open_connections();
        grpc_stream::flush_open_streams(&mut vm.borrow_mut(), self.context_id);
        access_log::flush(&mut vm.borrow_mut());
        if let Some(eviction) = self.eviction.refresh(&self.store()) {
            let mut vm = vm.borrow_mut();
            let vm = &mut *vm;
            eviction.apply(&mut vm.totals, &mut vm.counters);
            self.eviction.applied();
        }
    }

    /// Publishes this VM's totals (registering it first if needed) and, unless a report is in
    /// flight, tries to take or renew the lease.
    fn publish_and_take_turn(&mut self, vm: &ActiveVm) -> Turn {
        let interval = vm.config.report_interval;
        if !self.interval_set {
            let _ = hostcalls::set_tick_period(interval);
            self.interval_set = true;
        }
        let interval_ms = interval.as_millis() as i64;
        let now = now_ms();
        let store = self.store();
        let Some(uid) = self.registered_uid(now) else {
            return Turn::Wait;
        };
        coordinate::publish(
            &store,
            uid,
            now,
            TotalsPb::from_vm(&vm.totals, &vm.counters, vm.label_caps.capped()),
            self.eviction.applied_epoch,
        );
        if self.in_flight.is_some() {
            return Turn::Wait;
        }
        match coordinate::take_turn(&store, uid, now, LEASE_INTERVALS * interval_ms) {
            Ok(Role::Leader { sequence }) => Turn::Lead(LeaderTurn {
                uid,
                now,
                interval_ms,
                sequence,
            }),
            Ok(Role::Follower) => {
                self.idle.clear();
                Turn::Wait
            }
            Ok(Role::Retired) => {
                log(
                    LogLevel::Warn,
                    "meshtap: this VM was retired while stalled; its totals were folded, it starts over",
                );
                Turn::StartOver
            }
            Err(e) => {
                log(LogLevel::Warn, &format!("meshtap: {e}"));
                Turn::Wait
            }
        }
    }

    /// This VM's uid, registering it on first use; `None` (logged) while registration fails.
    fn registered_uid(&mut self, now: i64) -> Option<u64> {
        if let Some(uid) = self.uid {
            return Some(uid);
        }
        match coordinate::register(&self.store(), now) {
            Ok(uid) => Some(*self.uid.insert(uid)),
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("meshtap: cannot register this VM yet: {e}"),
                );
                None
            }
        }
    }

    /// A retired VM drops its totals (they were folded into the base) and registers again at
    /// the next tick.
    fn start_over(&mut self) {
        if let Some(vm) = &self.vm {
            let mut vm = vm.borrow_mut();
            vm.totals.clear();
            vm.counters.clear();
            vm.label_caps.clear();
        }
        self.uid = None;
    }

    /// The leader's proxy-wide totals (after the idle-series eviction step when it is on);
    /// `None` (logged) when they cannot be collected this tick.
    fn collect(&mut self, vm: &ActiveVm, turn: &LeaderTurn) -> Option<Collected> {
        let store = self.store();
        let collect = |eviction: &_| {
            coordinate::collect(
                &store,
                turn.uid,
                turn.now,
                STALE_INTERVALS * turn.interval_ms,
                vm.config.max_series,
                eviction,
            )
        };
        let collected = match collect(&self.eviction.record) {
            Ok(c) => match vm.config.series_idle_timeout {
                Some(timeout) => self.evict_idle(c, turn.now, timeout.as_millis() as i64, collect),
                None => Ok(c),
            },
            Err(e) => Err(e),
        };
        let collected = match collected {
            Ok(c) => c,
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("meshtap: cannot collect totals: {e}"),
                );
                return None;
            }
        };
        if collected.newly_retired > 0 {
            log(
                LogLevel::Info,
                &format!(
                    "meshtap: folded {} silent worker VM(s) into the proxy's base",
                    collected.newly_retired
                ),
            );
        }
        Some(collected)
    }

    /// The report's fields that do not come from the totals.
    fn report_context(&self, vm: &ActiveVm, turn: &LeaderTurn) -> ReportContext {
        ReportContext {
            proxy: vm.local.proxy(),
            timestamp_ms: turn.now,
            sequence: turn.sequence,
            interval_ms: turn.interval_ms as u32,
            enabled: vm.config.metrics,
            series_limit: vm.config.max_series as u64,
            channel: self.channel(),
            tags_to_remove: vm.config.tags_to_remove.clone(),
            dimensions: vm.config.dimensions.clone(),
            histogram_bounds: vm.config.histogram_bounds.clone(),
            // One channel per proxy carries the build gauge: the HTTP one.
            build_tag: (self.plugin_type == PluginType::Http).then(|| {
                let version = vm.local.proxy().istio_version;
                if version.is_empty() {
                    "unknown".to_string()
                } else {
                    version
                }
            }),
        }
    }

    /// The leader's eviction step: notes the collected totals, and when sets were idle for
    /// `timeout_ms` and every live VM applied the current record, publishes the next one and
    /// collects again without those sets. A failed publication is logged and retried next tick.
    fn evict_idle(
        &mut self,
        collected: Collected,
        now: i64,
        timeout_ms: i64,
        collect: impl Fn(&crate::proxy::evict::Eviction) -> Result<Collected, coordinate::CoordError>,
    ) -> Result<Collected, coordinate::CoordError> {
        let idle = self.idle.idle_sets(&collected.totals, now, timeout_ms);
        if idle.is_empty() || !collected.eviction_applied {
            return Ok(collected);
        }
        let next = self.eviction.record.next(idle);
        if let Err(e) = coordinate::publish_eviction(&self.store(), &next, self.eviction.cas) {
            log(
                LogLevel::Warn,
                &format!("meshtap: idle series not evicted this time: {e}"),
            );
            return Ok(collected);
        }
        log(
            LogLevel::Info,
            &format!(
                "meshtap: evicted {} label set(s) idle for {timeout_ms} ms",
                next.sets().len()
            ),
        );
        collect(&next)
    }

    /// Counts a failed report proxy-wide and logs at most once per minute.
    fn report_failed(&mut self, reason: String) {
        self.logs_in_flight.failed();
        let now = now_ms();
        if let Err(e) = coordinate::record_failure(&self.store(), now) {
            log(
                LogLevel::Debug,
                &format!("meshtap: failure not counted: {e}"),
            );
        }
        let due = self
            .last_failure_log_ms
            .is_none_or(|last| now - last >= FAILURE_LOG_EVERY_MS);
        if !due {
            self.failures_not_logged += 1;
            return;
        }
        let suppressed = std::mem::take(&mut self.failures_not_logged);
        self.last_failure_log_ms = Some(now);
        log(
            LogLevel::Warn,
            &format!(
                "meshtap: report failed: {reason} (totals are kept and sent with the next report; {suppressed} more failure(s) since the last log)"
            ),
        );
    }
}

/// What a tick does once the VM has published its totals.
enum Turn {
    /// This VM leads: it collects, builds and sends the proxy's report.
    Lead(LeaderTurn),
    /// This VM was retired while it stalled: it drops its totals and registers again.
    StartOver,
    /// Nothing more this tick (a follower, a report in flight, or shared data unavailable).
    Wait,
}

/// The leader's tick: its uid, the tick's time and interval, the report's sequence number.
struct LeaderTurn {
    uid: u64,
    now: i64,
    interval_ms: i64,
    sequence: u64,
}

/// Posts a report body to the sink; the call's token, or the host's refusal.
fn dispatch_report(vm: &ActiveVm, body: &[u8]) -> Result<u32, Status> {
    let pod = vm.local.pod_header();
    let authorization = vm
        .config
        .ingest_token
        .as_ref()
        .map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        (":method", "POST"),
        (":path", vm.config.sink_path.as_str()),
        (":authority", vm.config.sink_authority.as_str()),
        ("content-type", meshtap_report::CONTENT_TYPE),
        ("content-encoding", meshtap_report::CONTENT_ENCODING),
        (meshtap_report::POD_HEADER, pod.as_str()),
    ];
    if let Some(a) = &authorization {
        headers.push(("authorization", a.as_str()));
    }
    hostcalls::dispatch_http_call(
        &vm.config.sink_cluster,
        headers,
        Some(body),
        Vec::new(),
        vm.config.report_timeout,
    )
}

/// The HTTP or connection context of a VM whose configuration was refused: does nothing.
struct Passthrough;

impl Context for Passthrough {}

impl HttpContext for Passthrough {}

impl StreamContext for Passthrough {}
