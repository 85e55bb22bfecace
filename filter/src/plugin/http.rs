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
//! It never blocks a request: every callback returns `Action::Continue`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use super::host::{header, int_property, log, property, PropertyPath};
use super::vm::{add_counters, ActiveVm, BytesCache, ClusterInfo, Known};
use crate::aggregate::Recorded;
use crate::counters::CounterKind;
use crate::facts::{is_grpc_content_type, Direction, RequestFacts};
use crate::grpc::{parse_grpc_stats, FrameCounter};
use crate::labels::{compute, LabelRules};
use crate::peer::{ClusterServices, PeerInfo};
use crate::series::Observation;
use crate::shortcut::RequestKey;
use meshtap_report::schema::Reporter;

const PEER_HEADER: &str = "x-envoy-peer-metadata";

pub(super) const LISTENER_DIRECTION: PropertyPath = PropertyPath(b"xds\0listener_direction");
pub(super) const CLUSTER_NAME: PropertyPath = PropertyPath(b"xds\0cluster_name");
const ROUTE_NAME: PropertyPath = PropertyPath(b"xds\0route_name");
const CLUSTER_METADATA: PropertyPath = PropertyPath(b"xds\0cluster_metadata");
const UPSTREAM_HOST_METADATA: PropertyPath = PropertyPath(b"xds\0upstream_host_metadata");
const DOWNSTREAM_PEER_SAN: PropertyPath = PropertyPath(b"connection\0uri_san_peer_certificate");
const DOWNSTREAM_LOCAL_SAN: PropertyPath = PropertyPath(b"connection\0uri_san_local_certificate");
const UPSTREAM_PEER_SAN: PropertyPath = PropertyPath(b"upstream\0uri_san_peer_certificate");
const UPSTREAM_LOCAL_SAN: PropertyPath = PropertyPath(b"upstream\0uri_san_local_certificate");
const DOWNSTREAM_PEER: PropertyPath = PropertyPath(b"filter_state\0downstream_peer");
const UPSTREAM_PEER: PropertyPath = PropertyPath(b"filter_state\0upstream_peer");
const UPSTREAM_FILTER_STATE_PEER: PropertyPath =
    PropertyPath(b"upstream_filter_state\0upstream_peer");
const REQUEST_DURATION: PropertyPath = PropertyPath(b"request\0duration");
const REQUEST_TOTAL_SIZE: PropertyPath = PropertyPath(b"request\0total_size");
const RESPONSE_TOTAL_SIZE: PropertyPath = PropertyPath(b"response\0total_size");
const RESPONSE_CODE: PropertyPath = PropertyPath(b"response\0code");
pub(super) const RESPONSE_FLAGS: PropertyPath = PropertyPath(b"response\0flags");
const GRPC_STATS: PropertyPath = PropertyPath(b"filter_state\0envoy.filters.http.grpc_stats");
const RESPONSE_GRPC_STATUS: PropertyPath = PropertyPath(b"response\0grpc_status");

/// Records one stream when it is logged.
pub struct RequestRecorder {
    pub vm: Rc<RefCell<ActiveVm>>,
    /// Whether the request is gRPC, once its headers were seen.
    grpc: Option<bool>,
    /// gRPC frames counted in the request and response bodies (gRPC streams only).
    frames: Option<[FrameCounter; 2]>,
}

impl RequestRecorder {
    pub fn new(vm: Rc<RefCell<ActiveVm>>) -> Self {
        RequestRecorder {
            vm,
            grpc: None,
            frames: None,
        }
    }

    /// Counts the frames of a body chunk of one direction (0 request, 1 response).
    fn count_frames(&mut self, direction: usize, body_size: usize) {
        let Some(frames) = &mut self.frames else {
            return;
        };
        let buffer = [BufferType::HttpRequestBody, BufferType::HttpResponseBody][direction];
        frames[direction].feed(body_size, |offset, size| {
            hostcalls::get_buffer(buffer, offset, size).ok().flatten()
        });
    }

    /// The stream's gRPC message counts: Envoy's grpc_stats filter state when present, else
    /// the frames counted here.
    fn grpc_messages(&self) -> Option<(u64, u64)> {
        let frames = self.frames.as_ref()?;
        property(GRPC_STATS)
            .and_then(|bytes| parse_grpc_stats(&bytes))
            .or(Some((frames[0].messages(), frames[1].messages())))
    }
}

impl Context for RequestRecorder {}

impl HttpContext for RequestRecorder {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        let grpc = content_type.as_deref().is_some_and(is_grpc_content_type);
        self.grpc = Some(grpc);
        let messages_enabled = {
            let enabled = self.vm.borrow().config.metrics;
            enabled.request_messages || enabled.response_messages
        };
        if grpc && messages_enabled {
            self.frames = Some(Default::default());
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
        let messages = self.grpc_messages();
        let mut vm = self.vm.borrow_mut();
        record(&mut vm, self.grpc, messages);
    }
}

/// Which peers a reporter needs.
fn needs(reporter: Reporter) -> (bool, bool) {
    match reporter {
        Reporter::Source => (false, true),
        Reporter::Destination => (true, false),
        Reporter::Waypoint => (true, true),
    }
}

/// The id of an optional known value (0 when absent).
fn id_of<T>(known: &Option<Known<T>>) -> u32 {
    known.as_ref().map_or(0, |k| k.id)
}

/// The string of an optional known text.
fn text_of(known: &Option<Known<Option<Rc<str>>>>) -> &str {
    known
        .as_ref()
        .and_then(|k| k.value.as_deref())
        .unwrap_or_default()
}

/// The route names that change labels, as [`RequestKey::route`] numbers them.
const ROUTES: [Option<&str>; 3] = [None, Some("allow_any"), Some("block_all")];

/// Records a finished stream. `grpc` is known when the request headers were seen;
/// `messages` are the gRPC message counts of a gRPC stream.
fn record(vm: &mut ActiveVm, grpc: Option<bool>, messages: Option<(u64, u64)>) {
    vm.renew_ids_if_exhausted();
    let direction = int_property(LISTENER_DIRECTION).and_then(Direction::from_envoy);
    let reporter = vm.config.reporter.unwrap_or(match direction {
        Some(Direction::Inbound) => Reporter::Destination,
        _ => Reporter::Source,
    });
    let cluster = property(CLUSTER_NAME).map(|name| known_cluster(vm, &name));
    let services = cluster.as_ref().and_then(|c| c.value.services.clone());
    let route = match services {
        Some(_) => 0,
        None => property(ROUTE_NAME).map_or(0, |name| {
            ROUTES
                .iter()
                .position(|r| r.map(str::as_bytes) == Some(name.as_slice()))
                .unwrap_or(0)
        }),
    };
    let grpc = grpc.unwrap_or_else(|| {
        let content_type = header(MapType::HttpRequestHeaders, "content-type");
        content_type.as_deref().is_some_and(is_grpc_content_type)
    });
    let grpc_status = if grpc { grpc_status() } else { None };
    let enabled = vm.config.metrics;
    let Sides {
        downstream_peer,
        upstream_peer,
        downstream_peer_san,
        upstream_peer_san,
        downstream_local_san,
        upstream_local_san,
    } = read_sides(vm, reporter, PeerSources::HTTP);

    let host_header_fallback = !vm.config.disable_host_header_fallback;
    let authority = if reporter == Reporter::Source
        && host_header_fallback
        && services.as_ref().is_none_or(|s| s.host.is_empty())
    {
        known_text(vm, header(MapType::HttpRequestHeaders, ":authority"), true)
    } else {
        None
    };

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
    let observation = Observation::from_raw(duration_ns, request_bytes, response_bytes);
    let extra = super::dimensions::read_extra(vm);

    let key = RequestKey {
        reporter: reporter as u8,
        grpc,
        route: route as u8,
        cluster: id_of(&cluster),
        downstream_peer: id_of(&downstream_peer),
        upstream_peer: id_of(&upstream_peer),
        downstream_peer_san: id_of(&downstream_peer_san),
        downstream_local_san: id_of(&downstream_local_san),
        upstream_peer_san: id_of(&upstream_peer_san),
        upstream_local_san: id_of(&upstream_local_san),
        authority: id_of(&authority),
        extras: id_of(&extra),
        response_code,
        response_flags,
        grpc_status,
    };
    super::access_log::on_request(
        vm,
        reporter,
        &key,
        &cluster,
        &downstream_peer,
        &upstream_peer,
    );
    let generation = vm.totals.generation();
    // A gRPC stream with messages needs its peer labels, which the shortcut skips.
    let messages = messages.filter(|(request, response)| request + response > 0);
    if let (Some(slot), None) = (vm.shortcuts.get(&key, generation), messages) {
        vm.totals.record_at(slot, observation);
        return;
    }

    let peer_of =
        |k: &Option<Known<Option<Rc<PeerInfo>>>>| k.as_ref().and_then(|k| k.value.clone());
    let (downstream_peer, upstream_peer) = (peer_of(&downstream_peer), peer_of(&upstream_peer));
    let own = |k: &Option<Known<Rc<str>>>| k.as_ref().map(|k| k.value.clone());
    let (downstream_local_san, upstream_local_san) =
        (own(&downstream_local_san), own(&upstream_local_san));
    let facts = RequestFacts {
        cluster_name: cluster.as_ref().map(|c| &*c.value.name),
        route_name: ROUTES[route],
        services: services.as_deref(),
        downstream_peer: downstream_peer.as_deref(),
        upstream_peer: upstream_peer.as_deref(),
        downstream_peer_san: text_of(&downstream_peer_san),
        downstream_local_san: downstream_local_san.as_deref().unwrap_or_default(),
        upstream_peer_san: text_of(&upstream_peer_san),
        upstream_local_san: upstream_local_san.as_deref().unwrap_or_default(),
        authority: authority.as_ref().and_then(|k| k.value.as_deref()),
        grpc,
        response_code,
        response_flags,
        grpc_status,
        duration_ns,
        request_bytes,
        response_bytes,
    };
    let rules = LabelRules {
        reporter,
        host_header_fallback,
    };
    let ActiveVm {
        local,
        scratch,
        totals,
        counters,
        shortcuts,
        label_caps,
        extra_scratch,
        ..
    } = vm;
    compute(local, rules, &facts, scratch);
    extra_scratch.clear();
    if let Some(extra) = &extra {
        extra_scratch.extend(extra.value.iter().cloned());
    }
    if !label_caps.is_empty() {
        label_caps.apply(scratch, extra_scratch);
    }
    let (recorded, slot) = totals.record(scratch, extra_scratch, observation);
    shortcuts.insert(key, slot, generation);
    if let Some((request, response)) = messages {
        let labels = scratch.peer_values();
        let delta = [request, response, 0, 0];
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

/// Where a peer may be found besides `filter_state.<downstream|upstream>_peer`.
#[derive(Clone, Copy)]
pub(super) struct PeerSources {
    /// The `x-envoy-peer-metadata` request/response headers (HTTP only).
    pub headers: bool,
    /// `upstream_filter_state.upstream_peer`, where the TCP metadata exchange leaves the
    /// upstream peer on the client side.
    pub upstream_filter_state: bool,
}

impl PeerSources {
    pub const HTTP: PeerSources = PeerSources {
        headers: true,
        upstream_filter_state: false,
    };
    pub const TCP: PeerSources = PeerSources {
        headers: false,
        upstream_filter_state: true,
    };
}

/// The peers and certificate SANs a reporter needs, as cached ids and values.
pub(super) struct Sides {
    pub downstream_peer: Option<Known<Option<Rc<PeerInfo>>>>,
    pub upstream_peer: Option<Known<Option<Rc<PeerInfo>>>>,
    pub downstream_peer_san: Option<Known<Option<Rc<str>>>>,
    pub upstream_peer_san: Option<Known<Option<Rc<str>>>>,
    pub downstream_local_san: Option<Known<Rc<str>>>,
    pub upstream_local_san: Option<Known<Rc<str>>>,
}

/// Reads the peers and SANs `reporter` needs (the others stay `None`).
pub(super) fn read_sides(vm: &mut ActiveVm, reporter: Reporter, sources: PeerSources) -> Sides {
    let (need_downstream, need_upstream) = needs(reporter);
    let downstream_peer_san = if need_downstream {
        known_text(vm, property(DOWNSTREAM_PEER_SAN), false)
    } else {
        None
    };
    let upstream_peer_san = if need_upstream {
        known_text(vm, property(UPSTREAM_PEER_SAN), false)
    } else {
        None
    };
    let downstream_local_san = if need_downstream {
        own_san(vm, downstream_peer_san.is_some(), DOWNSTREAM_LOCAL_SAN)
    } else {
        None
    };
    let upstream_local_san = if reporter == Reporter::Source {
        own_san(vm, upstream_peer_san.is_some(), UPSTREAM_LOCAL_SAN)
    } else {
        None
    };

    let downstream_peer = if need_downstream {
        let raw = property(DOWNSTREAM_PEER)
            .map(|b| (PeerEncoding::Struct, b))
            .or_else(|| {
                let header = sources
                    .headers
                    .then(|| header(MapType::HttpRequestHeaders, PEER_HEADER))?;
                header.map(|b| (PeerEncoding::Header, b))
            });
        known_peer(vm, raw)
    } else {
        None
    };
    let upstream_peer = if need_upstream {
        let upstream_state = || {
            sources
                .upstream_filter_state
                .then(|| property(UPSTREAM_FILTER_STATE_PEER))?
        };
        let raw = upstream_state()
            .or_else(|| property(UPSTREAM_PEER))
            .map(|b| (PeerEncoding::Struct, b))
            .or_else(|| {
                let header = sources
                    .headers
                    .then(|| header(MapType::HttpResponseHeaders, PEER_HEADER))?;
                header.map(|b| (PeerEncoding::Header, b))
            })
            .or_else(|| property(UPSTREAM_HOST_METADATA).map(|b| (PeerEncoding::Endpoint, b)));
        known_peer(vm, raw)
    } else {
        None
    };
    Sides {
        downstream_peer,
        upstream_peer,
        downstream_peer_san,
        upstream_peer_san,
        downstream_local_san,
        upstream_local_san,
    }
}

/// What a cluster name stands for, from the per-VM cache or `xds.cluster_metadata`.
pub(super) fn known_cluster(vm: &mut ActiveVm, name: &[u8]) -> Known<ClusterInfo> {
    if let Some(cached) = vm.clusters.get(name) {
        return cached.clone();
    }
    let services = property(CLUSTER_METADATA)
        .and_then(|bytes| ClusterServices::from_cluster_metadata(&bytes))
        .map(Rc::new);
    let known = Known {
        id: vm.next_id(),
        value: ClusterInfo {
            name: Rc::from(String::from_utf8_lossy(name)),
            services,
        },
    };
    vm.clusters.insert(name, known).clone()
}

/// A SAN (lossy UTF-8) or, with `strict`, an `:authority` (`None` unless UTF-8), by its bytes.
fn known_text(
    vm: &mut ActiveVm,
    raw: Option<Vec<u8>>,
    strict: bool,
) -> Option<Known<Option<Rc<str>>>> {
    let raw = raw?;
    if let Some(cached) = vm.texts.get(&raw) {
        return Some(cached.clone());
    }
    let value = match std::str::from_utf8(&raw) {
        Ok(text) => Some(Rc::from(text)),
        Err(_) if strict => None,
        Err(_) => Some(Rc::from(String::from_utf8_lossy(&raw))),
    };
    let known = Known {
        id: vm.next_id(),
        value,
    };
    Some(vm.texts.insert(&raw, known).clone())
}

/// Where a peer's raw bytes came from.
#[derive(Clone, Copy)]
enum PeerEncoding {
    Struct,
    Header,
    Endpoint,
}

fn peer_cache(vm: &mut ActiveVm, encoding: PeerEncoding) -> &mut PeerCache {
    match encoding {
        PeerEncoding::Struct => &mut vm.peers_by_struct,
        PeerEncoding::Header => &mut vm.peers_by_header,
        PeerEncoding::Endpoint => &mut vm.peers_by_endpoint,
    }
}

type PeerCache = BytesCache<Known<Option<Rc<PeerInfo>>>>;

/// Decodes a peer, remembering decodings by their raw bytes (peers repeat).
fn known_peer(
    vm: &mut ActiveVm,
    raw: Option<(PeerEncoding, Vec<u8>)>,
) -> Option<Known<Option<Rc<PeerInfo>>>> {
    let (encoding, bytes) = raw?;
    if let Some(cached) = peer_cache(vm, encoding).get(&bytes) {
        return Some(cached.clone());
    }
    let decoded = match encoding {
        PeerEncoding::Struct => PeerInfo::from_struct_bytes(&bytes),
        PeerEncoding::Header => PeerInfo::from_header(&bytes),
        PeerEncoding::Endpoint => PeerInfo::from_upstream_host_metadata(&bytes),
    };
    let known = Known {
        id: vm.next_id(),
        value: decoded.map(Rc::new),
    };
    Some(peer_cache(vm, encoding).insert(&bytes, known).clone())
}

/// The proxy's own SAN: cached once seen, used only when the peer also presented one (so a
/// plaintext connection still reads as having no local SAN).
fn own_san(vm: &mut ActiveVm, peer_has_san: bool, path: PropertyPath) -> Option<Known<Rc<str>>> {
    if peer_has_san {
        if let Some(san) = &vm.own_san {
            return Some(san.clone());
        }
    }
    let san = known_text(vm, property(path), false)?;
    let san = Known {
        id: san.id,
        value: san.value.filter(|s| !s.is_empty())?,
    };
    if peer_has_san {
        vm.own_san = Some(san.clone());
    }
    Some(san)
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
