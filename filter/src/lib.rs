//! meshtap's proxy-wasm filter: records Istio's standard metrics inside every Envoy sidecar and
//! posts cumulative per-pod reports to the meshtap sink.
//!
//! The crate is pure logic unless the `plugin` feature (on by default) adds the proxy-wasm glue
//! in [`plugin`]. Its folders follow the data path:
//!
//! - [`config`]: the checked `pluginConfig` every room reads.
//! - [`record`]: one finished request, gRPC stream or TCP connection as plain facts, and Istio's
//!   label values computed from them (plus the access-log record of a kept request).
//! - [`store`]: one worker VM's cumulative totals by label set, interned and capped.
//! - [`proxy`]: the proxy-wide view across worker VMs through Envoy's shared data: snapshots,
//!   the leader lease, the merge, idle-series eviction, the access-log batches on their way to
//!   the leader's report.
//! - [`report`]: the report the leader builds from the merged totals, and its encoding.
//!
//! The path of one request: the glue reads host properties into a
//! [`RequestFacts`](record::facts::RequestFacts), [`record::labels`] computes the 25 label
//! values, [`store::aggregate`] adds the observation to the VM's totals. Each tick every VM
//! publishes its totals ([`proxy::coordinate`]), the leader VM merges them ([`proxy::merge`]),
//! [`report`] builds and encodes the report and the glue posts it to the sink.

// Crate-visible by default, so the compiler reports dead code; the few `pub` items are what the
// benchmarks drive. Without the glue, the parts only the glue calls are unused.
#![warn(unreachable_pub)]
#![cfg_attr(not(feature = "plugin"), allow(dead_code))]

pub mod config;
pub mod proxy;
pub mod record;
pub mod report;
pub mod store;

#[cfg(feature = "plugin")]
pub(crate) mod plugin;
