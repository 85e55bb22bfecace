//! Proxy-wide: the worker VMs of one proxy, which share nothing but Envoy's shared data.
//!
//! [`wire`] is what they write there, [`coordinate`] the protocol (registration, snapshots, the
//! leader lease, retiring stalled VMs, collecting the proxy's totals), [`merge`] the sum of the
//! VMs' totals, [`idle`] and [`evict`] idle-series eviction (the leader's decision and every
//! VM applying it), and [`access_log`] the VMs' access-log batches on their way to the leader's
//! report (the shared queue's batches, the per-report bound, the proxy-wide drop count). It
//! works over the [`coordinate::SharedStore`] trait and must not call the host nor build
//! reports.

pub(crate) mod access_log;
pub(crate) mod coordinate;
pub(crate) mod evict;
pub(crate) mod idle;
pub(crate) mod merge;
pub(crate) mod wire;

pub use coordinate::Collected;
pub use merge::MergedTotals;
pub use wire::TotalsPb;
