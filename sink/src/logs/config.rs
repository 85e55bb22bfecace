//! The `log_files:` section: which container-log files the sink tails (DaemonSet mode), where
//! it keeps its read positions, how often it looks, and whether access-log lines are parsed
//! into structured metadata (Envoy's access logs, or ztunnel's connection records in the files
//! of ztunnel pods: those discovery finds labelled `app=ztunnel`, else those `ztunnel_files`
//! names).
//!
//! With `kubernetes_sd` (role `pod`) and `relabel_configs`, the files and their stream labels
//! come from pod discovery instead of `include` (see `super::discovery`).
//!
//! Owns the keys, defaults and checks; the tailer reads them.

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;
use crate::scrape::config::{KubernetesSd, PodRole};
use crate::scrape::relabel::RelabelConfig;

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
    /// Files read as ztunnel's connection records instead of Envoy's access logs (ztunnel's
    /// container is also `istio-proxy`); with `kubernetes_sd`, only files of no discovered target
    /// (the pod label `app=ztunnel` decides for the others).
    pub ztunnel_files: String,
    /// Longest line after joining CRI `P` chunks; longer lines are cut (and counted).
    pub max_line_bytes: usize,
    /// Find the files from the pods the API server lists (role `pod`) instead of `include`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_sd: Option<KubernetesSd>,
    /// Applied to each discovered target; `__path__` names its files, its other labels not
    /// starting with `__` are their stream labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
}

const DEFAULT_INCLUDE: &str = "/var/log/pods/*/istio-proxy/*.log";

/// The pods of ztunnel's DaemonSet (`ztunnel-<5 chars>`) in any namespace.
const DEFAULT_ZTUNNEL_FILES: &str = "/var/log/pods/*_ztunnel-*/istio-proxy/*.log";

impl Default for LogFilesConfig {
    fn default() -> Self {
        LogFilesConfig {
            include: DEFAULT_INCLUDE.into(),
            positions_file: "/var/lib/meshtap/positions.json".into(),
            poll_interval: HumanDuration::from_millis(250),
            parse_access_logs: true,
            ztunnel_files: DEFAULT_ZTUNNEL_FILES.into(),
            max_line_bytes: meshtap_logformat::cri::DEFAULT_MAX_JOINED_BYTES,
            kubernetes_sd: None,
            relabel_configs: Vec::new(),
        }
    }
}

impl LogFilesConfig {
    /// Rules serde cannot express.
    pub fn check(&self) -> Result<(), String> {
        for (key, pattern) in [
            ("include", &self.include),
            ("ztunnel_files", &self.ztunnel_files),
        ] {
            if !pattern.starts_with('/') {
                return Err(format!(
                    "log_files.{key}: must be an absolute path pattern, got {pattern:?}"
                ));
            }
            if pattern.contains("**") || pattern.contains('[') {
                return Err(format!(
                    "log_files.{key}: only `*` and `?` wildcards are supported"
                ));
            }
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
        self.check_discovery()
    }

    fn check_discovery(&self) -> Result<(), String> {
        let Some(sd) = &self.kubernetes_sd else {
            if !self.relabel_configs.is_empty() {
                return Err("log_files.relabel_configs: needs kubernetes_sd".into());
            }
            return Ok(());
        };
        if sd.role != PodRole::Pod {
            return Err(
                "log_files.kubernetes_sd.role: must be pod (targets per container, as Alloy's discovery.kubernetes)".into(),
            );
        }
        if self.include != DEFAULT_INCLUDE {
            return Err(
                "log_files.include: not used with kubernetes_sd (the `__path__` label names the files)".into(),
            );
        }
        if self.relabel_configs.is_empty() {
            return Err(
                "log_files.relabel_configs: needs a rule setting `__path__` (for example from __meta_kubernetes_pod_uid and __meta_kubernetes_pod_container_name)".into(),
            );
        }
        for (i, rule) in self.relabel_configs.iter().enumerate() {
            rule.check()
                .map_err(|e| format!("log_files.relabel_configs[{i}]: {e}"))?;
        }
        Ok(())
    }
}
