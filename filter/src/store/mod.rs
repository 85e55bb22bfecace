//! The in-VM store: one worker VM's cumulative totals by label set.
//!
//! [`aggregate`] holds the request families ([`series`] values on [`buckets`] bounds, label
//! values interned by [`intern`] with [`hashing`]'s hashers), [`counters`] the TCP and gRPC
//! message families, [`shortcut`] the per-request cache from a request's inputs to its series
//! slot, [`bytes_cache`] the per-VM caches of raw host values (their keys compared by
//! [`compare`]), and [`overrides`] the per-label caps applied before a label set is stored (and the
//! `tags_to_remove` the report applies). Everything here is bounded by `max_series` or a fixed
//! size. It must not know how totals leave the VM: that is [`crate::proxy`].

pub(crate) mod aggregate;
pub(crate) mod buckets;
pub(crate) mod bytes_cache;
pub(crate) mod compare;
pub(crate) mod counters;
pub(crate) mod hashing;
pub(crate) mod intern;
pub(crate) mod overrides;
pub(crate) mod series;
pub(crate) mod shortcut;

pub use aggregate::Aggregator;
pub use aggregate::{Recorded, SeriesSlot};
pub use buckets::HistogramBounds;
pub use series::Observation;
