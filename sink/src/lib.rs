//! meshtap-sink: receives meshtap filter reports (and scrapes and tails what the filter does not
//! see) and writes Prometheus remote-write and Loki pushes.
//!
//! The module tree follows the data path: [`ingest`] (HTTP handler, auth, decode, conversion to
//! `meshtap_remotewrite::series`, ordering and stale markers per reporter) and [`scrape`] (pulled Prometheus text,
//! and the merge rule between both sources) → [`export`] (`remote_write` queues, encoder and
//! sender; `loki` batches), with [`spool`] (disk queues), [`logs`] (tailed files to Loki),
//! [`view`] (in-memory summary) and [`ops`] (self-metrics, health) beside them. Every stage
//! stands on [`floor`] (units, clock, HTTP client side, reporter keys), which uses no stage.
//! [`config`] assembles the sections' configs, [`serve`] runs the HTTP listeners and [`server`]
//! wires the stages into a running process. [`bench`] exposes the hot path for benchmarks.

pub mod bench;
pub mod config;
pub mod export;
pub mod floor;
pub mod ingest;
pub mod logs;
pub mod ops;
pub mod reload;
pub mod scrape;
pub mod serve;
pub mod server;
pub mod spool;
pub mod view;

pub use config::SinkConfig;
pub use server::{RunningSink, StartError};
