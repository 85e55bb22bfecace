//! The `ingest` config section: who may post reports and how large they may be.
//!
//! Owns the keys and their defaults only; the handler in this module's siblings applies them.

use serde::{Deserialize, Serialize};

/// `ingest:` — report reception.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Accepted bearer tokens. Empty means no authentication (a warning is logged at start).
    pub tokens: Vec<String>,
    /// Largest compressed report body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Largest decompressed report, in bytes (413 above).
    pub max_decoded_bytes: usize,
    /// The `job` target label of every exported series.
    pub job: String,
    /// A pod silent for this many of its report intervals gets stale markers for all its series.
    pub stale_after_intervals: u32,
    /// Accept a report only from a caller whose SPIFFE identity (the last element of the
    /// `x-forwarded-client-cert` header the sink's Istio sidecar adds) is in the reported pod's
    /// namespace; 403 otherwise.
    pub verify_identity: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            tokens: Vec::new(),
            max_body_bytes: 4 << 20,
            max_decoded_bytes: 32 << 20,
            job: "integrations/istio".to_owned(),
            stale_after_intervals: 3,
            verify_identity: false,
        }
    }
}

impl IngestConfig {
    /// Rules serde cannot express; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 {
            return Err("ingest.max_body_bytes: must be greater than 0".into());
        }
        if self.max_decoded_bytes < self.max_body_bytes {
            return Err("ingest.max_decoded_bytes: must be at least ingest.max_body_bytes".into());
        }
        if self.stale_after_intervals == 0 {
            return Err("ingest.stale_after_intervals: must be at least 1".into());
        }
        if self.job.is_empty() {
            return Err("ingest.job: must not be empty".into());
        }
        if let Some(i) = self.tokens.iter().position(String::is_empty) {
            return Err(format!("ingest.tokens[{i}]: must not be empty"));
        }
        Ok(())
    }
}
