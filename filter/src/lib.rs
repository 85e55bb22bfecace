//! meshtap's proxy-wasm filter: records Istio's standard HTTP request metrics inside every Envoy
//! sidecar and posts cumulative per-pod reports to the meshtap sink.
//!
//! The crate is pure logic unless the `plugin` feature (on by default) adds the proxy-wasm glue
//! in [`plugin`]. The data path of one request: the glue reads host properties into
//! [`facts::RequestFacts`], [`labels`] computes Istio's 25 label values, [`aggregate`] adds the
//! observation to the VM's cumulative totals. Each tick, [`coordinate`] shares the totals between
//! worker VMs through Envoy's shared data, one leader VM [`merge`]s them and [`report`] builds the
//! report the glue dispatches to the sink. With `access_log` enabled, [`access_log`] selects
//! requests and builds their records, which travel to the leader through a shared queue.

pub mod access_log;
pub mod aggregate;
pub mod base64;
pub mod buckets;
pub mod config;
pub mod coordinate;
pub mod counters;
pub mod dimensions;
pub mod evict;
pub mod facts;
pub mod flags;
pub mod grpc;
pub mod hashing;
pub mod idle;
pub mod intern;
pub mod labels;
pub mod merge;
pub mod node;
pub mod overrides;
pub mod peer;
pub mod protobuf;
pub mod report;
pub mod series;
pub mod shortcut;
pub mod tcp;
pub mod wire;

#[cfg(feature = "plugin")]
pub mod plugin;
