//! meshtap's log formats, as pure functions over bytes: CRI container-log lines and pod log paths
//! (`cri`), Istio's Envoy access-log lines in TEXT and JSON and the structured record behind them
//! (`access`), ztunnel's connection records in text and JSON (`ztunnel`), and Loki's push protobuf
//! with a batch builder (`loki`); `entry` joins them for the sink's log pipeline. No I/O, no async runtime, no file watching: the sink owns those.

pub mod access;
pub mod cri;
mod entry;
pub mod loki;
mod time;
pub mod ztunnel;

pub use entry::{log_entry_from_line, pod_stream_labels, LineFormat, DEFAULT_JOB};
pub use time::{parse_rfc3339_nanos, write_rfc3339_millis, TimestampError};
