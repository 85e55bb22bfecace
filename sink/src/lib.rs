//! meshtap-sink: receives meshtap filter reports and writes Prometheus remote-write.
//!
//! The module tree follows the data path: [`ingest`] (HTTP handler, auth, decode, conversion to
//! [`series`]) → [`staleness`] (ordering, stale markers) → [`export`] (remote-write queues,
//! encoder, retries), with [`view`] (in-memory summary) and [`ops`] (self-metrics, health) on
//! the side. [`config`] loads the YAML, [`serve`] runs the HTTP listeners and [`server`] wires the
//! stages into a running process.
//! [`bench`] exposes the hot path for benchmarks.

pub mod bench;
pub mod config;
pub mod export;
pub mod floor;
pub mod ingest;
pub mod logs;
pub mod ops;
pub mod scrape;
pub mod series;
pub mod serve;
pub mod server;
pub mod spool;
pub mod staleness;
pub mod view;

pub use config::SinkConfig;
pub use server::{RunningSink, StartError};
