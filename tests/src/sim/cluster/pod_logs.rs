//! The sidecars' and ztunnels' container logs as the kubelet lays them out on a node:
//! `<root>/<namespace>_<pod>_<uid>/istio-proxy/0.log`, each line in the CRI format
//! `<RFC3339Nano> stdout F <line>` (containerd's `Z` timestamps).
//!
//! Appends lines; what a line says is `access_line.rs`' business. No rotation.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::access_line::rfc3339;
use crate::sim::mesh::ResolvedWorkload;

/// The container every sidecar's lines are under.
pub const CONTAINER: &str = "istio-proxy";

/// One open `0.log` per sidecar workload.
pub struct PodLogs {
    root: PathBuf,
    files: BTreeMap<String, File>,
}

impl PodLogs {
    /// Creates the directories and empty `0.log` files of `sidecars` under `root`, each
    /// starting with the line pilot-agent logs when Envoy is ready.
    pub fn create<'a>(
        root: &Path,
        sidecars: impl Iterator<Item = &'a ResolvedWorkload>,
        now_nanos: u64,
    ) -> std::io::Result<PodLogs> {
        let mut logs = PodLogs {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
        };
        for workload in sidecars {
            logs.add_pod(&workload.name, &workload.namespace, &workload.pod)?;
            logs.append(&workload.name, now_nanos, "info\tEnvoy proxy is ready")?;
        }
        Ok(logs)
    }

    /// Creates the empty `0.log` of container `istio-proxy` of `pod`, appended to as `key`.
    pub fn add_pod(&mut self, key: &str, namespace: &str, pod: &str) -> std::io::Result<()> {
        let dir = self
            .root
            .join(format!("{namespace}_{pod}_{}", pod_uid(pod)))
            .join(CONTAINER);
        std::fs::create_dir_all(&dir)?;
        let file = File::create(dir.join("0.log"))?;
        self.files.insert(key.to_owned(), file);
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Appends one full (`F`) stdout line to the log of `key` (a sidecar's workload name or a
    /// key given to [`PodLogs::add_pod`]), if there is one.
    pub fn append(&mut self, key: &str, now_nanos: u64, line: &str) -> std::io::Result<()> {
        let Some(file) = self.files.get_mut(key) else {
            return Ok(());
        };
        writeln!(file, "{} stdout F {line}", rfc3339(now_nanos, 9))
    }
}

/// A stable UUID-shaped uid for a pod name (the kubelet uses the pod's metadata.uid).
pub fn pod_uid(pod: &str) -> String {
    let hash = pod.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let hex = format!("{hash:016x}{:016x}", hash.rotate_left(29) ^ 0x5bd1_e995);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
