//! The `log_files:` section: which container-log files the sink tails (DaemonSet mode), where
//! it keeps its read positions, how often it looks, and whether access-log lines are parsed
//! into structured metadata.
//!
//! Owns the keys, defaults and checks; the tailer reads them.

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;

/// `log_files:` — tail CRI container logs and push them to every `logs[]` endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFilesConfig {
    /// Files to tail; `*` and `?` match within one path segment.
    pub include: String,
    /// The positions file, rewritten atomically after every acknowledged push.
    pub positions_file: String,
    /// How often files are read and the glob re-evaluated (new files are picked up within it).
    pub poll_interval: HumanDuration,
    /// Parse Istio access-log lines (TEXT and JSON) into structured metadata.
    pub parse_access_logs: bool,
    /// Longest line after joining CRI `P` chunks; longer lines are cut (and counted).
    pub max_line_bytes: usize,
}

impl Default for LogFilesConfig {
    fn default() -> Self {
        LogFilesConfig {
            include: "/var/log/pods/*/istio-proxy/*.log".into(),
            positions_file: "/var/lib/meshtap/positions.json".into(),
            poll_interval: HumanDuration::from_millis(250),
            parse_access_logs: true,
            max_line_bytes: meshtap_logformat::cri::DEFAULT_MAX_JOINED_BYTES,
        }
    }
}

impl LogFilesConfig {
    /// Rules serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        if !self.include.starts_with('/') {
            return Err(format!(
                "log_files.include: must be an absolute path pattern, got {:?}",
                self.include
            ));
        }
        if self.include.contains("**") || self.include.contains('[') {
            return Err("log_files.include: only `*` and `?` wildcards are supported".into());
        }
        if self.positions_file.is_empty() {
            return Err("log_files.positions_file: must not be empty".into());
        }
        if self.poll_interval.is_zero() || self.poll_interval.get().as_secs() >= 1 {
            return Err(
                "log_files.poll_interval: must be greater than 0 and below 1s (new files are picked up within a second)".into(),
            );
        }
        if self.max_line_bytes == 0 {
            return Err("log_files.max_line_bytes: must be greater than 0".into());
        }
        Ok(())
    }
}
