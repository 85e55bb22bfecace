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
//! of [`super::access_log`].
//!
//! It never blocks a request: every callback returns `Action::Continue`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{LogLevel, MapType};

use super::host::{header, int_property, log, property, PropertyPath};
use super::vm::{ActiveVm, BytesCache, ClusterInfo, Known};
use crate::aggregate::Recorded;
use crate::facts::{is_grpc_content_type, Direction, RequestFacts};
use crate::labels::{compute, LabelRules};
use crate::peer::{ClusterServices, PeerInfo};
use crate::series::Observation;
use crate::shortcut::RequestKey;
use meshtap_report::schema::Reporter;

const PEER_HEADER: &str = "x-envoy-peer-metadata";

const LISTENER_DIRECTION: PropertyPath = PropertyPath(b"xds\0listener_direction");
const CLUSTER_NAME: PropertyPath = PropertyPath(b"xds\0cluster_name");
const ROUTE_NAME: PropertyPath = PropertyPath(b"xds\0route_name");
const CLUSTER_METADATA: PropertyPath = PropertyPath(b"xds\0cluster_metadata");
const UPSTREAM_HOST_METADATA: PropertyPath = PropertyPath(b"xds\0upstream_host_metadata");
const DOWNSTREAM_PEER_SAN: PropertyPath = PropertyPath(b"connection\0uri_san_peer_certificate");
const DOWNSTREAM_LOCAL_SAN: PropertyPath = PropertyPath(b"connection\0uri_san_local_certificate");
const UPSTREAM_PEER_SAN: PropertyPath = PropertyPath(b"upstream\0uri_san_peer_certificate");
const UPSTREAM_LOCAL_SAN: PropertyPath = PropertyPath(b"upstream\0uri_san_local_certificate");
const DOWNSTREAM_PEER: PropertyPath = PropertyPath(b"filter_state\0downstream_peer");
const UPSTREAM_PEER: PropertyPath = PropertyPath(b"filter_state\0upstream_peer");
const REQUEST_DURATION: PropertyPath = PropertyPath(b"request\0duration");
const REQUEST_TOTAL_SIZE: PropertyPath = PropertyPath(b"request\0total_size");
const RESPONSE_TOTAL_SIZE: PropertyPath = PropertyPath(b"response\0total_size");
const RESPONSE_CODE: PropertyPath = PropertyPath(b"response\0code");
const RESPONSE_FLAGS: PropertyPath = PropertyPath(b"response\0flags");
const RESPONSE_GRPC_STATUS: PropertyPath = PropertyPath(b"response\0grpc_status");

/// Records one stream when it is logged.
pub struct RequestRecorder {
    pub vm: Rc<RefCell<ActiveVm>>,
}

impl Context for RequestRecorder {}

impl HttpContext for RequestRecorder {
    fn on_log(&mut self) {
        let mut vm = self.vm.borrow_mut();
        record(&mut vm);
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

fn record(vm: &mut ActiveVm) {
    vm.renew_ids_if_exhausted();
    let direction = int_property(LISTENER_DIRECTION).and_then(Direction::from_envoy);
    let reporter = vm.config.reporter.unwrap_or(match direction {
        Some(Direction::Inbound) => Reporter::Destination,
        _ => Reporter::Source,
    });
    let (need_downstream, need_upstream) = needs(reporter);

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
    let content_type = header(MapType::HttpRequestHeaders, "content-type");
    let grpc = content_type.as_deref().is_some_and(is_grpc_content_type);
    let grpc_status = if grpc { grpc_status() } else { None };
    let enabled = vm.config.metrics;

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
                header(MapType::HttpRequestHeaders, PEER_HEADER).map(|b| (PeerEncoding::Header, b))
            });
        known_peer(vm, raw)
    } else {
        None
    };
    let upstream_peer = if need_upstream {
        let raw = property(UPSTREAM_PEER)
            .map(|b| (PeerEncoding::Struct, b))
            .or_else(|| {
                header(MapType::HttpResponseHeaders, PEER_HEADER).map(|b| (PeerEncoding::Header, b))
            })
            .or_else(|| property(UPSTREAM_HOST_METADATA).map(|b| (PeerEncoding::Endpoint, b)));
        known_peer(vm, raw)
    } else {
        None
    };

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
    if let Some(slot) = vm.shortcuts.get(&key, generation) {
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
        shortcuts,
        ..
    } = vm;
    compute(local, rules, &facts, scratch);
    let (recorded, slot) = totals.record(scratch, observation);
    shortcuts.insert(key, slot, generation);
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

/// What a cluster name stands for, from the per-VM cache or `xds.cluster_metadata`.
fn known_cluster(vm: &mut ActiveVm, name: &[u8]) -> Known<ClusterInfo> {
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
