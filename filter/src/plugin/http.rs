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
//! It never blocks a request: every callback returns `Action::Continue`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{LogLevel, MapType};

use super::host::{header, int_property, log, property, string_property, PropertyPath};
use super::vm::ActiveVm;
use crate::aggregate::Recorded;
use crate::facts::{is_grpc_content_type, Direction, RequestFacts};
use crate::labels::{compute, LabelRules};
use crate::peer::{ClusterServices, PeerInfo};
use crate::series::Observation;
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

fn record(vm: &mut ActiveVm) {
    let direction = int_property(LISTENER_DIRECTION).and_then(Direction::from_envoy);
    let reporter = vm.config.reporter.unwrap_or(match direction {
        Some(Direction::Inbound) => Reporter::Destination,
        _ => Reporter::Source,
    });
    let (need_downstream, need_upstream) = needs(reporter);

    let cluster_name = string_property(CLUSTER_NAME);
    let services = cluster_services(vm, cluster_name.as_deref());
    let route_name = match services {
        Some(_) => None,
        None => string_property(ROUTE_NAME),
    };
    let content_type = header(MapType::HttpRequestHeaders, "content-type");
    let grpc = content_type.as_deref().is_some_and(is_grpc_content_type);
    let grpc_status = if grpc { grpc_status() } else { None };
    let enabled = vm.config.metrics;

    let downstream_peer_san = if need_downstream {
        string_property(DOWNSTREAM_PEER_SAN)
    } else {
        None
    };
    let upstream_peer_san = if need_upstream {
        string_property(UPSTREAM_PEER_SAN)
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
            .map(PeerSource::Struct)
            .or_else(|| header(MapType::HttpRequestHeaders, PEER_HEADER).map(PeerSource::Header));
        decode_peer(vm, raw)
    } else {
        None
    };
    let upstream_peer = if need_upstream {
        let raw = property(UPSTREAM_PEER)
            .map(PeerSource::Struct)
            .or_else(|| header(MapType::HttpResponseHeaders, PEER_HEADER).map(PeerSource::Header))
            .or_else(|| property(UPSTREAM_HOST_METADATA).map(PeerSource::Endpoint));
        decode_peer(vm, raw)
    } else {
        None
    };

    let host_header_fallback = !vm.config.disable_host_header_fallback;
    let authority = if reporter == Reporter::Source
        && host_header_fallback
        && services.as_ref().is_none_or(|s| s.host.is_empty())
    {
        header(MapType::HttpRequestHeaders, ":authority").and_then(|a| String::from_utf8(a).ok())
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

    let facts = RequestFacts {
        cluster_name: cluster_name.as_deref(),
        route_name: route_name.as_deref(),
        services: services.as_deref(),
        downstream_peer: downstream_peer.as_deref(),
        upstream_peer: upstream_peer.as_deref(),
        downstream_peer_san: downstream_peer_san.as_deref().unwrap_or_default(),
        downstream_local_san: downstream_local_san.as_deref().unwrap_or_default(),
        upstream_peer_san: upstream_peer_san.as_deref().unwrap_or_default(),
        upstream_local_san: upstream_local_san.as_deref().unwrap_or_default(),
        authority: authority.as_deref(),
        grpc,
        response_code: int_property(RESPONSE_CODE),
        response_flags: int_property(RESPONSE_FLAGS).unwrap_or(0) as u64,
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
        ..
    } = vm;
    compute(local, rules, &facts, scratch);
    let observation = Observation::from_raw(duration_ns, request_bytes, response_bytes);
    if let Recorded::Overflow { first: true } = totals.record(scratch, observation) {
        log(
            LogLevel::Warn,
            &format!(
                "meshtap: max_series ({}) reached; new label sets now go to the series whose labels are all \"overflow\"",
                vm.config.max_series
            ),
        );
    }
}

/// The first Istio service of the cluster, from the per-VM cache or `xds.cluster_metadata`.
fn cluster_services(vm: &mut ActiveVm, cluster: Option<&str>) -> Option<Rc<ClusterServices>> {
    let cluster = cluster?;
    if let Some(cached) = vm.clusters.get(cluster) {
        return cached.clone();
    }
    let services = property(CLUSTER_METADATA)
        .and_then(|bytes| ClusterServices::from_cluster_metadata(&bytes))
        .map(Rc::new);
    vm.clusters.insert(cluster.to_string(), services).clone()
}

enum PeerSource {
    Struct(Vec<u8>),
    Header(Vec<u8>),
    Endpoint(Vec<u8>),
}

/// Decodes one encoding of a peer.
type DecodePeer = fn(&[u8]) -> Option<PeerInfo>;

/// Decodes a peer, remembering decodings by their raw bytes (peers repeat).
fn decode_peer(vm: &mut ActiveVm, raw: Option<PeerSource>) -> Option<Rc<PeerInfo>> {
    let (cache, bytes, decode): (_, _, DecodePeer) = match raw? {
        PeerSource::Struct(b) => (&mut vm.peers_by_struct, b, PeerInfo::from_struct_bytes),
        PeerSource::Header(b) => (&mut vm.peers_by_header, b, PeerInfo::from_header),
        PeerSource::Endpoint(b) => (
            &mut vm.peers_by_endpoint,
            b,
            PeerInfo::from_upstream_host_metadata,
        ),
    };
    if let Some(cached) = cache.get(bytes.as_slice()) {
        return cached.clone();
    }
    let peer = decode(&bytes).map(Rc::new);
    cache.insert(bytes, peer).clone()
}

/// The proxy's own SAN: cached once seen, used only when the peer also presented one (so a
/// plaintext connection still reads as having no local SAN).
fn own_san(vm: &mut ActiveVm, peer_has_san: bool, path: PropertyPath) -> Option<Rc<str>> {
    if peer_has_san {
        if let Some(san) = &vm.own_san {
            return Some(san.clone());
        }
    }
    let san: Option<Rc<str>> = string_property(path)
        .filter(|s| !s.is_empty())
        .map(Rc::from);
    if peer_has_san && san.is_some() {
        vm.own_san = san.clone();
    }
    san
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
