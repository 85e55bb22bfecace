//! The HTTP context: in `on_log` (access-log phase, like Istio's native stats filter) it reads
//! the stream's facts from the host, computes the labels and records the observation.
//!
//! Host calls per request in the common case (mTLS mesh traffic, cluster metadata and the
//! proxy's own SAN cached, peer found in filter state), 10 in total:
//!  1 `xds.listener_direction`   2 `xds.cluster_name`     3 `response.code`
//!  4 `response.flags`           5 `request.duration`     6 `request.total_size`
//!  7 `response.total_size`      8 request `content-type` 9 `filter_state.<downstream|upstream>_peer`
//! 10 `<connection|upstream>.uri_san_peer_certificate`.
//! Only when needed: `xds.cluster_metadata` (once per cluster), `xds.route_name` (cluster without
//! an Istio service), `response.grpc_status` and `grpc-status` headers (gRPC), `:authority`
//! (host-header fallback), the `x-envoy-peer-metadata` header and `xds.upstream_host_metadata`
//! (no peer in filter state), the local SAN (no cached SAN), and both peers on waypoints.
//!
//! With `access_log` enabled, a request that is selected and fits the buffer also gets the reads
//! of [`super::access_log`]. With extra dimensions (`overrides[].tags`), one read per header or
//! property dimension ([`super::dimensions`]).
//!
//! Who the stream is between is read through [`super::peers`]. It never blocks a request: every
//! callback returns `Action::Continue`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};

use super::grpc_stream::OpenGrpcStream;
use super::host::{header, int_property, log, PropertyPath};
use super::id_caches::{Known, KnownPeer, KnownSan};
use super::peers::{PeerSources, StreamPeers};
use super::vm::{add_counters, ActiveVm};
use crate::record::access_log::RequestOutcome;
use crate::record::facts::{is_grpc_content_type, RequestFacts};
use crate::record::labels::compute;
use crate::store::aggregate::Recorded;
use crate::store::counters::{CounterKind, CounterValues};
use crate::store::series::Observation;
use crate::store::shortcut::{PackedKey, RequestKey};

const REQUEST_DURATION: PropertyPath = PropertyPath(b"request\0duration");
const REQUEST_TOTAL_SIZE: PropertyPath = PropertyPath(b"request\0total_size");
const RESPONSE_TOTAL_SIZE: PropertyPath = PropertyPath(b"response\0total_size");
const RESPONSE_CODE: PropertyPath = PropertyPath(b"response\0code");
pub(super) const RESPONSE_FLAGS: PropertyPath = PropertyPath(b"response\0flags");
pub(super) const GRPC_STATS: PropertyPath =
    PropertyPath(b"filter_state\0envoy.filters.http.grpc_stats");
const RESPONSE_GRPC_STATUS: PropertyPath = PropertyPath(b"response\0grpc_status");

/// Records one stream when it is logged.
pub(crate) struct RequestRecorder {
    pub vm: Rc<RefCell<ActiveVm>>,
    /// This stream's context id.
    context_id: u32,
    /// Whether the request is gRPC, once its headers were seen.
    grpc: Option<bool>,
    /// The stream's gRPC message counts (gRPC streams with a message family enabled), also
    /// visited by the report tick while the stream is open.
    messages: Option<Rc<RefCell<OpenGrpcStream>>>,
}

impl RequestRecorder {
    pub(crate) fn new(vm: Rc<RefCell<ActiveVm>>, context_id: u32) -> Self {
        RequestRecorder {
            vm,
            context_id,
            grpc: None,
            messages: None,
        }
    }

    /// Counts the frames of a body chunk of one direction (0 request, 1 response).
    fn count_frames(&mut self, direction: usize, body_size: usize) {
        if let Some(messages) = &self.messages {
            messages.borrow_mut().count_frames(direction, body_size);
        }
    }
}

impl Context for RequestRecorder {}

impl HttpContext for RequestRecorder {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        let grpc = content_type.as_deref().is_some_and(is_grpc_content_type);
        self.grpc = Some(grpc);
        let messages_enabled = || {
            let enabled = self.vm.borrow().config.metrics;
            enabled.request_messages || enabled.response_messages
        };
        if grpc && messages_enabled() {
            let stream = OpenGrpcStream::open(&mut self.vm.borrow_mut(), self.context_id);
            self.messages = Some(stream);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(messages) = &self.messages {
            messages.borrow_mut().response_started = true;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _: bool) -> Action {
        self.count_frames(0, body_size);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _: bool) -> Action {
        self.count_frames(1, body_size);
        Action::Continue
    }

    fn on_log(&mut self) {
        let rest = self
            .messages
            .as_ref()
            .and_then(|m| m.borrow_mut().take_rest());
        let mut vm = self.vm.borrow_mut();
        // Messages of a stream a tick already labelled keep that stream's labels.
        let unlabelled = match rest {
            Some((delta, Some(labels))) => {
                vm.add_labelled_counters(CounterKind::GrpcMessages, &labels, &delta);
                None
            }
            Some((delta, None)) => Some(delta),
            None => None,
        };
        record(&mut vm, self.grpc, unlabelled);
    }
}

/// The id of an optional known value (0 when absent).
fn id_of(known: Option<Known>) -> u32 {
    known.map_or(0, |k| k.id.get())
}

/// How a finished stream ended, as `on_log` reads it.
struct StreamOutcome {
    grpc: bool,
    ended: RequestOutcome,
    observation: Observation,
}

/// Records a finished stream. `grpc` is known when the request headers were seen; `messages`
/// are the gRPC message counts of a gRPC stream not yet recorded, when no tick labelled it.
fn record(vm: &mut ActiveVm, grpc: Option<bool>, messages: Option<CounterValues>) {
    vm.start_lookups();
    let peers = StreamPeers::read(vm, PeerSources::HTTP);
    let outcome = read_outcome(vm, grpc);
    let extra = super::dimensions::read_extra(vm);
    let key = request_key(&peers, &outcome, extra);
    super::access_log::on_request(vm, &peers, outcome.ended);
    let generation = vm.totals.generation();
    let packed = key.packed();
    // Messages without labels need the stream's peer labels, which the shortcut skips.
    if let (Some(slot), None) = (vm.shortcuts.get(&packed, generation), messages) {
        vm.totals.record_at(slot, outcome.observation);
        return;
    }
    record_labelled(vm, &peers, &outcome, extra, packed, messages);
}

/// Reads how the stream ended: gRPC or not, its status, code, flags and the observation (the
/// byte sizes only when their family is enabled).
fn read_outcome(vm: &ActiveVm, grpc: Option<bool>) -> StreamOutcome {
    let grpc = grpc.unwrap_or_else(|| {
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        content_type.as_deref().is_some_and(is_grpc_content_type)
    });
    let grpc_status = if grpc { grpc_status() } else { None };
    let enabled = vm.config.metrics;
    let duration_ns = int_property(REQUEST_DURATION).unwrap_or(0);
    let request_bytes = if enabled.request_bytes {
        int_property(REQUEST_TOTAL_SIZE).unwrap_or(0)
    } else {
        0
    };
    let response_bytes = if enabled.response_bytes {
        int_property(RESPONSE_TOTAL_SIZE).unwrap_or(0)
    } else {
        0
    };
    let response_code = int_property(RESPONSE_CODE);
    let response_flags = int_property(RESPONSE_FLAGS).unwrap_or(0) as u64;
    StreamOutcome {
        grpc,
        ended: RequestOutcome {
            response_code,
            response_flags,
            grpc_status,
        },
        observation: Observation::from_raw(duration_ns, request_bytes, response_bytes),
    }
}

/// The shortcut key of a stream: the ids of its inputs and its outcome.
fn request_key(peers: &StreamPeers, outcome: &StreamOutcome, extra: Option<Known>) -> RequestKey {
    let sides = &peers.sides;
    let peer_id = |p: Option<KnownPeer>| id_of(p.map(|p| p.known));
    let san_id = |s: Option<KnownSan>| s.map_or(0, |s| s.id().get());
    RequestKey {
        reporter: peers.reporter as u8,
        grpc: outcome.grpc,
        route: peers.route as u8,
        cluster: id_of(peers.cluster),
        downstream_peer: peer_id(sides.downstream_peer),
        upstream_peer: peer_id(sides.upstream_peer),
        downstream_peer_san: id_of(sides.downstream_peer_san),
        downstream_local_san: san_id(sides.downstream_local_san),
        upstream_peer_san: id_of(sides.upstream_peer_san),
        upstream_local_san: san_id(sides.upstream_local_san),
        authority: id_of(peers.authority),
        extras: id_of(extra),
        response_code: outcome.ended.response_code,
        response_flags: outcome.ended.response_flags,
        grpc_status: outcome.ended.grpc_status,
    }
}

/// A stream the shortcut does not know: computes its labels (capped), records it, remembers
/// its slot under `key` and adds the gRPC `messages` under its peer labels.
fn record_labelled(
    vm: &mut ActiveVm,
    peers: &StreamPeers,
    outcome: &StreamOutcome,
    extra: Option<Known>,
    key: PackedKey,
    messages: Option<CounterValues>,
) {
    let generation = vm.totals.generation();
    let ActiveVm {
        local,
        scratch,
        totals,
        counters,
        shortcuts,
        label_caps,
        extra_scratch,
        caches,
        ..
    } = vm;
    let facts = RequestFacts {
        grpc: outcome.grpc,
        response_code: outcome.ended.response_code,
        response_flags: outcome.ended.response_flags,
        grpc_status: outcome.ended.grpc_status,
        ..peers.facts(caches)
    };
    compute(local, peers.rules(), &facts, scratch);
    extra_scratch.clear();
    if let Some(extra) = extra {
        extra_scratch.extend(caches.extra(extra).iter().cloned());
    }
    if !label_caps.is_empty() {
        label_caps.apply(scratch, extra_scratch);
    }
    let (recorded, slot) = totals.record(scratch, extra_scratch, outcome.observation);
    shortcuts.insert(key, slot, generation);
    if let Some(delta) = messages {
        let labels = scratch.peer_values();
        let max_series = vm.config.max_series;
        add_counters(
            counters,
            max_series,
            CounterKind::GrpcMessages,
            &labels,
            &delta,
        );
    }
    if let Recorded::Overflow { first: true } = recorded {
        log(
            LogLevel::Warn,
            &format!(
                "meshtap: max_series ({}) reached; new label sets now go to the series whose labels are all \"overflow\"",
                vm.config.max_series
            ),
        );
    }
}

/// gRPC status: `response.grpc_status`, else `grpc-status` in the trailers, then the headers.
fn grpc_status() -> Option<i64> {
    if let Some(status) = int_property(RESPONSE_GRPC_STATUS) {
        return Some(status);
    }
    [MapType::HttpResponseTrailers, MapType::HttpResponseHeaders]
        .into_iter()
        .find_map(|map| header(map, "grpc-status"))
        .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok())
}
