//! The sink's floor: what every stage may use and what uses no stage.
//!
//! The rule: a module under `floor/` imports only the standard library, outside crates and
//! other `floor` modules — never a stage (`ingest`, `scrape`, `export`, `logs`, `spool`, `ops`,
//! `view`, `serve`, ...) nor `config`. Stages import from here; `sink/tests/architecture.rs`
//! checks that the stages import one another without a circle.
//!
//! Owns the units of config values (durations, sizes, URLs), the clock, the HTTP client side
//! (connection settings, one client builder, one retry loop), Prometheus' relabel rules and
//! the key that names a reporter (namespace, pod, channel).

pub mod byte_size;
pub mod clock;
pub mod duration;
pub mod http;
pub mod http_url;
pub mod relabel;
pub mod reporter;

pub use byte_size::{parse_byte_size, ByteSize};
pub use duration::{parse_duration, HumanDuration};
pub use http_url::{host_port_problem, HttpUrl};
pub use reporter::{PodKey, ReporterKey};

/// What a secret is printed as (config printouts, URLs with user info).
pub const REDACTED: &str = "<redacted>";
