//! Who a stream or connection is between, read from the host in its context: the reporter, the
//! cluster and its Istio services, the peers (peer metadata filter state, `x-envoy-peer-metadata`
//! headers, endpoint metadata) and the certificate SANs, each recognised by its raw bytes
//! through the VM's caches and held as a [`Known`] handle (the values are read through the
//! handles only when labels are computed). Also an open stream's 20 peer labels once the peer
//! metadata exchange is over (for the gRPC message counts a tick records). It must not record
//! anything (that is [`super::http`], [`super::tcp`] and [`super::grpc_stream`]).

use std::rc::Rc;

use proxy_wasm::types::MapType;

use super::host::{header, int_property, property, PropertyPath};
use super::id_caches::{ClusterInfo, IdCaches, Known, KnownPeer, KnownSan, PeerEncoding};
use super::vm::ActiveVm;
use crate::record::facts::{Direction, RequestFacts};
use crate::record::labels::{compute, LabelRules};
use crate::record::peer::{ClusterServices, PeerInfo};
use meshtap_report::schema::Reporter;

const PEER_HEADER: &str = "x-envoy-peer-metadata";
const LISTENER_DIRECTION: PropertyPath = PropertyPath(b"xds\0listener_direction");
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
/// The client's and the waypoint's identities, left by the waypoint's `connect_authority`
/// filter (the TLS connection of the CONNECT tunnel is not the stream's connection there).
const PEER_PRINCIPAL: PropertyPath = PropertyPath(b"filter_state\0io.istio.peer_principal");
const LOCAL_PRINCIPAL: PropertyPath = PropertyPath(b"filter_state\0io.istio.local_principal");

/// Which peers a reporter needs.
fn needs(reporter: Reporter) -> (bool, bool) {
    match reporter {
        Reporter::Source => (false, true),
        Reporter::Destination => (true, false),
        Reporter::Waypoint => (true, true),
    }
}

/// The route names that change labels, as [`crate::store::shortcut::RequestKey::route`] numbers them.
const ROUTES: [Option<&str>; 3] = [None, Some("allow_any"), Some("block_all")];

/// What a stream's 20 peer labels are computed from, read from the host in the stream's
/// context, as handles into the VM's caches.
pub(super) struct StreamPeers {
    pub reporter: Reporter,
    pub cluster: Option<Known>,
    /// Index into [`ROUTES`], as [`crate::store::shortcut::RequestKey::route`] numbers routes.
    pub route: usize,
    pub sides: Sides,
    pub authority: Option<Known>,
    host_header_fallback: bool,
}

impl StreamPeers {
    pub(super) fn read(vm: &mut ActiveVm, sources: PeerSources) -> StreamPeers {
        let reporter = reporter(vm);
        let cluster = property(CLUSTER_NAME).map(|name| known_cluster(vm, &name));
        let services = cluster.and_then(|c| vm.caches.cluster(c).services.as_ref());
        let route = match services {
            Some(_) => 0,
            None => property(ROUTE_NAME).map_or(0, |name| {
                ROUTES
                    .iter()
                    .position(|r| r.map(str::as_bytes) == Some(name.as_slice()))
                    .unwrap_or(0)
            }),
        };
        let host_header_fallback = !vm.config.disable_host_header_fallback;
        let authority = if reporter == Reporter::Source
            && host_header_fallback
            && services.is_none_or(|s| s.host.is_empty())
        {
            known_text(vm, header(MapType::HttpRequestHeaders, ":authority"), true)
        } else {
            None
        };
        let sides = read_sides(vm, reporter, sources);
        StreamPeers {
            reporter,
            cluster,
            route,
            sides,
            authority,
            host_header_fallback,
        }
    }

    /// The facts the peer labels depend on (the others at their defaults), read from `caches`.
    pub(super) fn facts<'a>(&self, caches: &'a IdCaches) -> RequestFacts<'a> {
        let cluster = self.cluster.map(|c| caches.cluster(c));
        RequestFacts {
            cluster_name: cluster.map(|c| &*c.name),
            route_name: ROUTES[self.route],
            services: cluster.and_then(|c| c.services.as_ref()),
            authority: self.authority.and_then(|k| caches.text(k)),
            ..self.sides.facts(caches)
        }
    }

    pub(super) fn rules(&self) -> LabelRules {
        LabelRules {
            reporter: self.reporter,
            host_header_fallback: self.host_header_fallback,
        }
    }
}

/// The reporter of the current stream or connection: the configured one, else `waypoint` on a
/// waypoint's node (as istiod configures Istio's stats filter there), else from the listener
/// direction.
pub(super) fn reporter(vm: &ActiveVm) -> Reporter {
    if let Some(fixed) = vm.fixed_reporter {
        return fixed;
    }
    match int_property(LISTENER_DIRECTION).and_then(Direction::from_envoy) {
        Some(Direction::Inbound) => Reporter::Destination,
        _ => Reporter::Source,
    }
}

/// Whether the peer metadata exchange is over for `reporter`: the upstream peer on the client
/// side, the downstream peer on the server side and on waypoints (Istio's `peerInfoRead`; a
/// waypoint learns its upstream peer only with the response).
pub(super) fn reporter_peer_known(reporter: Reporter, sides: &Sides, caches: &IdCaches) -> bool {
    let peer = match reporter {
        Reporter::Source => sides.upstream_peer,
        Reporter::Destination | Reporter::Waypoint => sides.downstream_peer,
    };
    peer.and_then(|p| caches.peer(p)).is_some()
}

/// The current (open) stream's 20 peer labels, once the reporter's peer came from the metadata
/// exchange (filter state or peer header; an endpoint's metadata does not count, as in Istio's
/// `peerInfoRead`): `None` before. `response_started` says whether its response headers exist.
pub(super) fn exchanged_peer_labels(
    vm: &mut ActiveVm,
    response_started: bool,
) -> Option<Rc<[String]>> {
    vm.start_lookups();
    let peers = StreamPeers::read(vm, PeerSources::open_http(response_started));
    if !reporter_peer_known(peers.reporter, &peers.sides, &vm.caches) {
        return None;
    }
    let facts = peers.facts(&vm.caches);
    compute(&vm.local, peers.rules(), &facts, &mut vm.scratch);
    vm.label_caps.apply(&mut vm.scratch, &mut []);
    Some(
        vm.scratch
            .peer_values()
            .into_iter()
            .map(String::from)
            .collect(),
    )
}

/// Where a peer may be found besides `filter_state.<downstream|upstream>_peer`.
#[derive(Clone, Copy)]
pub(super) struct PeerSources {
    /// The `x-envoy-peer-metadata` request header (HTTP only).
    pub request_header: bool,
    /// The `x-envoy-peer-metadata` response header (HTTP only, and only once the response
    /// headers exist: before, Envoy answers a read of them with BadArgument, which the SDK
    /// turns into a panic).
    pub response_header: bool,
    /// `upstream_filter_state.upstream_peer`, where the TCP metadata exchange leaves the
    /// upstream peer on the client side.
    pub upstream_filter_state: bool,
    /// `xds.upstream_host_metadata`, the upstream endpoint's metadata, when the exchange left no
    /// upstream peer.
    pub endpoint: bool,
}

impl PeerSources {
    /// A stream at its end (access-log phase, where absent maps read as not found).
    pub(super) const HTTP: PeerSources = PeerSources {
        request_header: true,
        response_header: true,
        upstream_filter_state: false,
        endpoint: true,
    };
    /// An open stream: only what the peer metadata exchange left so far.
    pub(super) const fn open_http(response_started: bool) -> PeerSources {
        PeerSources {
            response_header: response_started,
            endpoint: false,
            ..PeerSources::HTTP
        }
    }
    pub(super) const TCP: PeerSources = PeerSources {
        request_header: false,
        response_header: false,
        upstream_filter_state: true,
        endpoint: true,
    };
    /// Only the stream's filter state, for `reporter`'s sake: a waypoint's peers come from its
    /// workload discovery (`downstream_peer`, `upstream_peer`) and nowhere else (Istio's
    /// `peerInfo` for `ServerGateway`: no header exchange, no endpoint metadata).
    const fn for_reporter(self, reporter: Reporter) -> PeerSources {
        match reporter {
            Reporter::Waypoint => PeerSources {
                request_header: false,
                response_header: false,
                upstream_filter_state: false,
                endpoint: false,
            },
            Reporter::Source | Reporter::Destination => self,
        }
    }
}

/// The peers and certificate SANs a reporter needs, as handles into the VM's caches.
#[derive(Clone, Copy, Default)]
pub(super) struct Sides {
    pub downstream_peer: Option<KnownPeer>,
    pub upstream_peer: Option<KnownPeer>,
    pub downstream_peer_san: Option<Known>,
    pub upstream_peer_san: Option<Known>,
    pub downstream_local_san: Option<KnownSan>,
    pub upstream_local_san: Option<KnownSan>,
}

impl Sides {
    /// The peer and SAN facts, read from `caches` (the others at their defaults).
    pub(super) fn facts<'a>(&self, caches: &'a IdCaches) -> RequestFacts<'a> {
        let text = |k: Option<Known>| k.and_then(|k| caches.text(k)).unwrap_or_default();
        let san = |k: Option<KnownSan>| k.map_or("", |k| caches.san(k));
        RequestFacts {
            downstream_peer: self.downstream_peer.and_then(|p| caches.peer(p)),
            upstream_peer: self.upstream_peer.and_then(|p| caches.peer(p)),
            downstream_peer_san: text(self.downstream_peer_san),
            downstream_local_san: san(self.downstream_local_san),
            upstream_peer_san: text(self.upstream_peer_san),
            upstream_local_san: san(self.upstream_local_san),
            ..RequestFacts::default()
        }
    }
}

/// Reads the peers and SANs `reporter` needs (the others stay `None`).
pub(super) fn read_sides(vm: &mut ActiveVm, reporter: Reporter, sources: PeerSources) -> Sides {
    let (need_downstream, need_upstream) = needs(reporter);
    let sources = sources.for_reporter(reporter);
    let (downstream_peer_san, downstream_local_san) = match reporter {
        Reporter::Source => (None, None),
        Reporter::Destination => downstream_sans(vm),
        Reporter::Waypoint => tunnel_principals(vm).unwrap_or_else(|| downstream_sans(vm)),
    };
    let (upstream_peer_san, upstream_local_san) = match reporter {
        Reporter::Source => {
            let peer = known_text(vm, property(UPSTREAM_PEER_SAN), false);
            let local = own_san(vm, peer.is_some(), UPSTREAM_LOCAL_SAN);
            (peer, local)
        }
        // A waypoint's destination principal is the upstream peer's identity, not a SAN.
        Reporter::Destination | Reporter::Waypoint => (None, None),
    };

    let downstream_peer = if need_downstream {
        known_peer(vm, raw_downstream_peer(sources))
    } else {
        None
    };
    let upstream_peer = if need_upstream {
        known_peer(vm, raw_upstream_peer(sources))
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

type PeerAndLocalSan = (Option<Known>, Option<KnownSan>);

/// The downstream connection's peer and local certificate SANs.
fn downstream_sans(vm: &mut ActiveVm) -> PeerAndLocalSan {
    let peer = known_text(vm, property(DOWNSTREAM_PEER_SAN), false);
    let local = own_san(vm, peer.is_some(), DOWNSTREAM_LOCAL_SAN);
    (peer, local)
}

/// `io.istio.peer_principal` and `io.istio.local_principal` from filter state, `None` when both
/// are absent or empty (then Istio falls back to the connection's SANs: `populatePeerInfo`,
/// case `ServerGateway`, istio/proxy `istio_stats.cc`).
fn tunnel_principals(vm: &mut ActiveVm) -> Option<PeerAndLocalSan> {
    let peer = known_text(vm, property(PEER_PRINCIPAL), false);
    let local = known_text(vm, property(LOCAL_PRINCIPAL), false)
        .filter(|k| !vm.caches.text(*k).unwrap_or_default().is_empty())
        .map(KnownSan::Text);
    let peer_principal = peer.and_then(|k| vm.caches.text(k)).unwrap_or_default();
    (!peer_principal.is_empty() || local.is_some()).then_some((peer, local))
}

/// The downstream peer's bytes: its filter state, else the exchange request header.
fn raw_downstream_peer(sources: PeerSources) -> Option<(PeerEncoding, Vec<u8>)> {
    property(DOWNSTREAM_PEER)
        .map(|b| (PeerEncoding::Struct, b))
        .or_else(|| {
            let header = sources
                .request_header
                .then(|| header(MapType::HttpRequestHeaders, PEER_HEADER))?;
            header.map(|b| (PeerEncoding::Header, b))
        })
}

/// The upstream peer's bytes: the upstream filter state, the peer's filter state, the exchange
/// response header, else the endpoint's metadata, each when its source is enabled.
fn raw_upstream_peer(sources: PeerSources) -> Option<(PeerEncoding, Vec<u8>)> {
    let upstream_state = || {
        sources
            .upstream_filter_state
            .then(|| property(UPSTREAM_FILTER_STATE_PEER))?
    };
    upstream_state()
        .or_else(|| property(UPSTREAM_PEER))
        .map(|b| (PeerEncoding::Struct, b))
        .or_else(|| {
            let header = sources
                .response_header
                .then(|| header(MapType::HttpResponseHeaders, PEER_HEADER))?;
            header.map(|b| (PeerEncoding::Header, b))
        })
        .or_else(|| {
            let metadata = sources.endpoint.then(|| property(UPSTREAM_HOST_METADATA))?;
            metadata.map(|b| (PeerEncoding::Endpoint, b))
        })
}

/// What a cluster name stands for, from the per-VM cache or `xds.cluster_metadata`.
pub(super) fn known_cluster(vm: &mut ActiveVm, name: &[u8]) -> Known {
    if let Some(cached) = vm.caches.find_cluster(name) {
        return cached;
    }
    let services =
        property(CLUSTER_METADATA).and_then(|bytes| ClusterServices::from_cluster_metadata(&bytes));
    let info = ClusterInfo {
        name: Box::from(String::from_utf8_lossy(name)),
        services,
    };
    vm.caches.add_cluster(name, info)
}

/// A SAN (lossy UTF-8) or, with `strict`, an `:authority` (`None` unless UTF-8), by its bytes.
fn known_text(vm: &mut ActiveVm, raw: Option<Vec<u8>>, strict: bool) -> Option<Known> {
    let raw = raw?;
    if let Some(cached) = vm.caches.find_text(&raw) {
        return Some(cached);
    }
    let value = match std::str::from_utf8(&raw) {
        Ok(text) => Some(Box::from(text)),
        Err(_) if strict => None,
        Err(_) => Some(Box::from(String::from_utf8_lossy(&raw))),
    };
    Some(vm.caches.add_text(&raw, value))
}

/// Decodes a peer, remembering decodings by their raw bytes (peers repeat).
fn known_peer(vm: &mut ActiveVm, raw: Option<(PeerEncoding, Vec<u8>)>) -> Option<KnownPeer> {
    let (encoding, bytes) = raw?;
    if let Some(cached) = vm.caches.find_peer(encoding, &bytes) {
        return Some(cached);
    }
    let decoded = match encoding {
        PeerEncoding::Struct => PeerInfo::from_struct_bytes(&bytes),
        PeerEncoding::Header => PeerInfo::from_header(&bytes),
        PeerEncoding::Endpoint => PeerInfo::from_upstream_host_metadata(&bytes),
    };
    Some(vm.caches.add_peer(encoding, &bytes, decoded))
}

/// The proxy's own SAN: cached once seen, used only when the peer also presented one (so a
/// plaintext connection still reads as having no local SAN).
fn own_san(vm: &mut ActiveVm, peer_has_san: bool, path: PropertyPath) -> Option<KnownSan> {
    if peer_has_san {
        if let Some(san) = vm.caches.own_san() {
            return Some(san);
        }
    }
    let san = known_text(vm, property(path), false)?;
    if vm.caches.text(san).unwrap_or_default().is_empty() {
        return None;
    }
    if peer_has_san {
        return Some(vm.caches.set_own_san(san));
    }
    Some(KnownSan::Text(san))
}
