//! The state one worker VM shares between its root context and its HTTP contexts: the checked
//! configuration, the local node identity, the cumulative totals and the per-request caches.
//!
//! Owns the bounded caches (cluster metadata by cluster name, decoded peers by their raw bytes,
//! the proxy's own certificate SAN) so the steady state reuses everything. It must not call the
//! host: the HTTP context reads, this state remembers.

use std::collections::HashMap;
use std::rc::Rc;

use crate::aggregate::Aggregator;
use crate::config::FilterConfig;
use crate::hashing::FnvBuild;
use crate::labels::LabelValues;
use crate::node::LocalNode;
use crate::peer::{ClusterServices, PeerInfo};

/// Entries per cache before it is cleared (bounds memory with many clusters or peers).
pub const CACHE_CAPACITY: usize = 1024;

/// A configured, recording VM.
pub struct ActiveVm {
    pub config: FilterConfig,
    pub local: LocalNode,
    pub totals: Aggregator,
    pub scratch: LabelValues,
    pub clusters: BoundedCache<String, Option<Rc<ClusterServices>>>,
    /// Decoded peers by raw bytes, one cache per encoding.
    pub peers_by_struct: BoundedCache<Vec<u8>, Option<Rc<PeerInfo>>>,
    pub peers_by_header: BoundedCache<Vec<u8>, Option<Rc<PeerInfo>>>,
    pub peers_by_endpoint: BoundedCache<Vec<u8>, Option<Rc<PeerInfo>>>,
    /// This proxy's certificate URI SAN, once seen on a connection.
    pub own_san: Option<Rc<str>>,
}

impl ActiveVm {
    pub fn new(config: FilterConfig, local: LocalNode) -> Self {
        let totals = Aggregator::new(config.max_series, config.metrics);
        ActiveVm {
            config,
            local,
            totals,
            scratch: LabelValues::default(),
            clusters: BoundedCache::default(),
            peers_by_struct: BoundedCache::default(),
            peers_by_header: BoundedCache::default(),
            peers_by_endpoint: BoundedCache::default(),
            own_san: None,
        }
    }
}

/// A map that forgets everything when it reaches [`CACHE_CAPACITY`].
pub struct BoundedCache<K, V> {
    map: HashMap<K, V, FnvBuild>,
}

impl<K, V> Default for BoundedCache<K, V> {
    fn default() -> Self {
        BoundedCache {
            map: HashMap::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq, V> BoundedCache<K, V> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> &V {
        if self.map.len() >= CACHE_CAPACITY {
            self.map.clear();
        }
        self.map.entry(key).or_insert(value)
    }
}
