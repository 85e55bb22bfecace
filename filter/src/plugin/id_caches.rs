//! A worker VM's caches of host values by their raw bytes — clusters, decoded peers (one cache
//! per encoding), certificate SANs and `:authority` values, extra dimension values — each entry
//! with an id that stands for its value in [`RequestKey`]s, and the proxy's own SAN once seen.
//!
//! A lookup hands out a [`Known`]: the entry's id and where it is, two integers, so the
//! per-request path copies and drops nothing; the values are read through it only when a
//! request's labels are computed or its access-log record is built. A `Known` is valid until the
//! next [`IdCaches::start_lookups`], the only place entries are dropped (a cache that filled up
//! during a lookup is cleared there, before the next one). Ids are never reused: when they run
//! out, every cache is cleared and the caller forgets the keys that hold them. It must not read
//! from the host (the contexts read, these caches remember).
//!
//! [`RequestKey`]: crate::store::shortcut::RequestKey

use std::num::NonZeroU32;

use crate::record::peer::{ClusterServices, PeerInfo};
use crate::store::bytes_cache::BytesCache;

/// Ids one request can hand out at most (one per cache lookup), kept in reserve so a request
/// never sees ids from before and after a renewal; also the entries a cache may take past its
/// capacity within one request.
const IDS_PER_REQUEST: u32 = 16;

/// A cached value with the id that stands for it in shortcut keys (never 0, so an absent
/// value's `Option` is the id's niche and reads as id 0 for free).
pub(crate) struct Interned<T> {
    pub id: NonZeroU32,
    pub value: T,
}

/// What a cluster name stands for.
pub(crate) struct ClusterInfo {
    pub name: Box<str>,
    pub services: Option<ClusterServices>,
}

/// Clears `cache` when it is full, or with `all`.
fn reset<V>(cache: &mut BytesCache<V>, all: bool) {
    if all || cache.is_full() {
        cache.clear();
    }
}

/// A value found in (or added to) one of the caches: its id and its entry there. Valid until the
/// next [`IdCaches::start_lookups`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub id: NonZeroU32,
    entry: u32,
}

/// Where a peer's raw bytes came from (each encoding has its own cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerEncoding {
    Struct = 0,
    Header = 1,
    Endpoint = 2,
}

/// A peer found by its raw bytes in the cache of their encoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KnownPeer {
    pub encoding: PeerEncoding,
    pub known: Known,
}

/// A local certificate SAN or principal: a cached non-empty text, or the proxy's own SAN.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KnownSan {
    Text(Known),
    /// [`IdCaches::own_san`], with its id.
    Own(NonZeroU32),
}

impl KnownSan {
    pub(crate) fn id(self) -> NonZeroU32 {
        match self {
            KnownSan::Text(known) => known.id,
            KnownSan::Own(id) => id,
        }
    }
}

type PeerCache = BytesCache<Interned<Option<PeerInfo>>>;

/// See the module documentation.
pub(crate) struct IdCaches {
    clusters: BytesCache<Interned<ClusterInfo>>,
    /// Decoded peers by raw bytes, one cache per [`PeerEncoding`] (its index).
    peers: [PeerCache; 3],
    /// Certificate SANs, principals and `:authority` values (lossy UTF-8; `None` for an
    /// authority that is not UTF-8).
    texts: BytesCache<Interned<Option<Box<str>>>>,
    /// Extra dimension values by their raw host values (`plugin/dimensions.rs`).
    extra_values: BytesCache<Interned<Box<[String]>>>,
    /// This proxy's certificate URI SAN, once seen on a connection.
    own_san: Option<Interned<Box<str>>>,
    next_id: u32,
    /// A cache reached its capacity during the last lookups (cleared at the next start).
    full: bool,
}

impl Default for IdCaches {
    fn default() -> Self {
        IdCaches {
            clusters: BytesCache::default(),
            peers: Default::default(),
            texts: BytesCache::default(),
            extra_values: BytesCache::default(),
            own_san: None,
            next_id: 1,
            full: false,
        }
    }
}

/// The entry of `key` in `cache`, as a [`Known`].
fn find<T>(cache: &BytesCache<Interned<T>>, key: &[u8]) -> Option<Known> {
    let (entry, interned) = cache.get(key)?;
    Some(Known {
        id: interned.id,
        entry,
    })
}

impl IdCaches {
    /// Called before the lookups of each request, connection or stream visit: clears the
    /// caches that filled up, and when ids are about to run out clears everything so ids can
    /// start over without ever meaning two values at once. Returns whether ids started over
    /// (every key holding the old ones must be forgotten).
    #[inline]
    pub(crate) fn start_lookups(&mut self) -> bool {
        let renew = self.next_id >= u32::MAX - IDS_PER_REQUEST;
        if !self.full && !renew {
            return false;
        }
        self.clear(renew)
    }

    /// Clears the caches that filled up, or all of them with `renew`; returns `renew`. Rare,
    /// so kept out of the per-request path.
    #[cold]
    #[inline(never)]
    fn clear(&mut self, renew: bool) -> bool {
        reset(&mut self.clusters, renew);
        self.peers.iter_mut().for_each(|cache| reset(cache, renew));
        reset(&mut self.texts, renew);
        reset(&mut self.extra_values, renew);
        self.full = false;
        if renew {
            self.own_san = None;
            self.next_id = 1;
        }
        renew
    }

    /// Adds `value` under `key` (not present) with a fresh id.
    fn add<T>(
        cache: &mut BytesCache<Interned<T>>,
        next_id: &mut u32,
        full: &mut bool,
        key: &[u8],
        value: T,
    ) -> Known {
        let id = NonZeroU32::new(*next_id).expect("ids start at 1 and renew before u32::MAX");
        *next_id += 1;
        let entry = cache.insert(key, Interned { id, value });
        *full |= cache.is_full();
        Known { id, entry }
    }

    pub(crate) fn find_cluster(&self, name: &[u8]) -> Option<Known> {
        find(&self.clusters, name)
    }

    pub(crate) fn add_cluster(&mut self, name: &[u8], value: ClusterInfo) -> Known {
        Self::add(
            &mut self.clusters,
            &mut self.next_id,
            &mut self.full,
            name,
            value,
        )
    }

    pub(crate) fn cluster(&self, known: Known) -> &ClusterInfo {
        &self.clusters.at(known.entry).value
    }

    pub(crate) fn find_peer(&self, encoding: PeerEncoding, raw: &[u8]) -> Option<KnownPeer> {
        let known = find(&self.peers[encoding as usize], raw)?;
        Some(KnownPeer { encoding, known })
    }

    /// Adds a decoding (`None`: the bytes did not decode to a peer).
    pub(crate) fn add_peer(
        &mut self,
        encoding: PeerEncoding,
        raw: &[u8],
        peer: Option<PeerInfo>,
    ) -> KnownPeer {
        let cache = &mut self.peers[encoding as usize];
        let known = Self::add(cache, &mut self.next_id, &mut self.full, raw, peer);
        KnownPeer { encoding, known }
    }

    /// The decoded peer, `None` when its bytes did not decode.
    pub(crate) fn peer(&self, peer: KnownPeer) -> Option<&PeerInfo> {
        self.peers[peer.encoding as usize]
            .at(peer.known.entry)
            .value
            .as_ref()
    }

    pub(crate) fn find_text(&self, raw: &[u8]) -> Option<Known> {
        find(&self.texts, raw)
    }

    pub(crate) fn add_text(&mut self, raw: &[u8], text: Option<Box<str>>) -> Known {
        Self::add(
            &mut self.texts,
            &mut self.next_id,
            &mut self.full,
            raw,
            text,
        )
    }

    /// A cached text, `None` for an authority that was not UTF-8.
    pub(crate) fn text(&self, known: Known) -> Option<&str> {
        self.texts.at(known.entry).value.as_deref()
    }

    /// A local SAN's text.
    pub(crate) fn san(&self, san: KnownSan) -> &str {
        match san {
            KnownSan::Text(known) => self.text(known).unwrap_or_default(),
            KnownSan::Own(_) => self.own_san.as_ref().map_or("", |own| &own.value),
        }
    }

    /// The proxy's own SAN, when seen before.
    pub(crate) fn own_san(&self) -> Option<KnownSan> {
        self.own_san.as_ref().map(|own| KnownSan::Own(own.id))
    }

    /// Remembers a cached non-empty text as the proxy's own SAN.
    pub(crate) fn set_own_san(&mut self, known: Known) -> KnownSan {
        let value = Box::from(self.text(known).unwrap_or_default());
        self.own_san = Some(Interned {
            id: known.id,
            value,
        });
        KnownSan::Own(known.id)
    }

    pub(crate) fn find_extra(&self, raw: &[u8]) -> Option<Known> {
        find(&self.extra_values, raw)
    }

    pub(crate) fn add_extra(&mut self, raw: &[u8], values: Box<[String]>) -> Known {
        Self::add(
            &mut self.extra_values,
            &mut self.next_id,
            &mut self.full,
            raw,
            values,
        )
    }

    pub(crate) fn extra(&self, known: Known) -> &[String] {
        &self.extra_values.at(known.entry).value
    }
}
