//! The meshtap-sink config sections that point a sink at a simulated cluster: `scrape:` with
//! istiod and every sidecar as static targets (target labels lining up with the filter's
//! series, `merge: {prefer: filter}`) and every ztunnel as a static target of job `ztunnel`
//! with the labels the built-in `scrape.ztunnel` job gives it from pod discovery, and
//! `log_files:` tailing the pod-log directory (ztunnels' files read as ztunnel's records).
//!
//! Text only. [`demo_sink`] puts them together into the whole sink config of the demo
//! (`meshtap-sim --cluster-dir` writes it as `sink.yaml`; `cargo xtask demo` and the demo's
//! end-to-end tests run it, appending only their backends).

use std::fmt::Write;
use std::path::Path;

use super::pod_logs::CONTAINER;
use super::ztunnels::{ZTUNNEL_METRICS_PATH, ZTUNNEL_NAMESPACE};
use super::{Announcement, ISTIOD_NAMESPACE, ISTIOD_POD, SIDECAR_STATS_PATH};

/// The job of the sidecar targets: the sink's default `ingest.job`, so scraped and reported
/// series of a pod share `job`.
pub const SIDECAR_JOB: &str = "integrations/istio";

/// `scrape:` scraping every endpoint of `cluster` every `interval` (e.g. `5s`).
pub fn scrape_section(cluster: &Announcement, interval: &str) -> String {
    let mut out = format!(
        "scrape:\n  interval: {interval}\n  merge: {{prefer: filter}}\n  jobs:\n    - name: istiod\n      static_configs:\n        - targets: [\"{}\"]\n          labels: {{namespace: {ISTIOD_NAMESPACE}, pod: {ISTIOD_POD}, app: istiod, container: discovery}}\n    - name: {SIDECAR_JOB}\n      metrics_path: {SIDECAR_STATS_PATH}\n      static_configs:\n",
        cluster.istiod
    );
    for sidecar in &cluster.sidecars {
        let _ = writeln!(
            out,
            "        - targets: [\"{}\"]\n          labels: {{namespace: {}, pod: {}, container: {CONTAINER}, instance: \"{}:15020\"}}",
            sidecar.stats, sidecar.namespace, sidecar.pod, sidecar.ip
        );
    }
    if !cluster.ztunnels.is_empty() {
        let _ = writeln!(
            out,
            "    - name: ztunnel\n      metrics_path: {ZTUNNEL_METRICS_PATH}\n      static_configs:"
        );
    }
    for ztunnel in &cluster.ztunnels {
        let _ = writeln!(
            out,
            "        - targets: [\"{}\"]\n          labels: {{namespace: {ZTUNNEL_NAMESPACE}, pod: {}, node: {}, app: ztunnel}}",
            ztunnel.stats, ztunnel.pod, ztunnel.node
        );
    }
    out
}

/// `log_files:` tailing the sidecars' logs of `cluster`, keeping positions in `positions_file`.
pub fn log_files_section(cluster: &Announcement, positions_file: &Path) -> String {
    let root = cluster.pod_log_root.display();
    format!(
        "log_files:\n  include: \"{root}/*/{CONTAINER}/*.log\"\n  ztunnel_files: \"{root}/*_ztunnel-*/{CONTAINER}/*.log\"\n  positions_file: \"{}\"\n",
        positions_file.display()
    )
}

/// The demo's whole sink config: listening on a loopback port of its own choosing (the
/// address is in its "meshtap-sink ready" line), taking reports with `token`, scraping every
/// endpoint of `cluster` every `interval` and tailing its pod logs into the live view (and to
/// any `logs:` endpoint appended after it), positions in `positions_file`.
pub fn demo_sink(
    cluster: &Announcement,
    token: Option<&str>,
    interval: &str,
    positions_file: &Path,
) -> String {
    let mut out = String::from("listen: 127.0.0.1:0\n");
    if let Some(token) = token {
        let _ = writeln!(out, "ingest:\n  tokens: [\"{token}\"]");
    }
    out.push_str(&scrape_section(cluster, interval));
    out.push_str(&log_files_section(cluster, positions_file));
    out
}
