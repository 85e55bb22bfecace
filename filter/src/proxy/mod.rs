//! Proxy-wide: the worker VMs of one proxy, which share nothing but Envoy's shared data.
//!
//! [`wire`] is what they write there, [`coordinate`] the protocol (registration, snapshots, the
//! leader lease, retiring stalled VMs, collecting the proxy's totals), [`merge`] the sum of the
//! VMs' totals, and [`idle`] and [`evict`] idle-series eviction (the leader's decision and every
//! VM applying it). It works over the [`coordinate::SharedStore`] trait and must not call the
//! host nor build reports.

pub mod coordinate;
pub mod evict;
pub mod idle;
pub mod merge;
pub mod wire;
