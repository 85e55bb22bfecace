//! The meshtap-sink config sections that point a sink at a simulated cluster: `scrape:` with
//! istiod and every sidecar as static targets (target labels lining up with the filter's
//! series, `merge: {prefer: filter}`), and `log_files:` tailing the pod-log directory.
//!
//! Text only; `cargo xtask demo` and the end-to-end tests append them to their own sections.

use std::fmt::Write;
use std::path::Path;

use super::pod_logs::CONTAINER;
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
    out
}

/// `log_files:` tailing the sidecars' logs of `cluster`, keeping positions in `positions_file`.
pub fn log_files_section(cluster: &Announcement, positions_file: &Path) -> String {
    format!(
        "log_files:\n  include: \"{}/*/{CONTAINER}/*.log\"\n  positions_file: \"{}\"\n",
        cluster.pod_log_root.display(),
        positions_file.display()
    )
}
