//! Export stage: one folder per destination — `remote_write` (samples to Prometheus
//! remote-write endpoints) and `loki` (log entries to Loki) — and what both report back: the
//! [`receipt::Receipt`] of where accepted data is kept, why an endpoint could not start, and
//! the shutdown summary. The HTTP client side both use is `crate::floor::http`.
//!
//! It must not convert reports (ingest does) nor decide staleness.

pub mod joined_body;
pub mod loki;
pub mod receipt;
pub mod remote_write;

use crate::floor::http::ClientError;
use crate::spool::{SpoolConfig, SpoolError, SpoolKind};

/// Why an endpoint (remote-write or Loki) could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Warns about spool directories of `kind` that belong to no configured endpoint.
pub fn warn_abandoned_spools(spool: &SpoolConfig, kind: SpoolKind, configured: &[(&str, &str)]) {
    for dir in spool.abandoned(kind, configured) {
        tracing::warn!(dir = %dir.display(), "spool of an endpoint that is no longer configured (renamed or removed): its records are not sent; restore the endpoint or delete the directory");
    }
}

/// Samples each endpoint still held when the shutdown deadline passed.
#[derive(Debug, Default)]
pub struct ShutdownSummary {
    pub dropped: Vec<(String, u64)>,
    /// Samples each endpoint kept in its spool for the next start.
    pub kept: Vec<(String, u64)>,
    /// Log entries each Loki endpoint still held (filter-shipped records; tailed lines are
    /// re-read from their positions after a restart).
    pub log_entries_dropped: Vec<(String, u64)>,
}
