//! The in-VM store: one worker VM's cumulative totals by label set.
//!
//! [`aggregate`] holds the request families ([`series`] values on [`buckets`] bounds, label
//! values interned by [`intern`] with [`hashing`]'s hashers), [`counters`] the TCP and gRPC
//! message families, [`shortcut`] the per-request cache from a request's inputs to its series
//! slot, and [`overrides`] the per-label caps applied before a label set is stored (and the
//! `tags_to_remove` the report applies). Everything here is bounded by `max_series` or a fixed
//! size. It must not know how totals leave the VM: that is [`crate::proxy`].

pub mod aggregate;
pub mod buckets;
pub mod counters;
pub mod hashing;
pub mod intern;
pub mod overrides;
pub mod series;
pub mod shortcut;
