//! The scrape target the scrape benches and the memory guard convert the 15020-shaped body for:
//! one static sidecar target with the `namespace` and `pod` labels pod discovery would add.
//! Shared through `#[path]` by `scrape_convert.rs`, `view_extract.rs` and
//! `tests/scrape_memory.rs`; it must stay free of measurement code.

use meshtap_sink::scrape::config::ScrapeConfig;
use meshtap_sink::scrape::target::{static_targets, Target};

pub fn sidecar_target() -> Target {
    let section: ScrapeConfig = serde_yaml::from_str(
        "jobs: [{name: bench, metrics_path: /stats/prometheus, static_configs: [{targets: ['10.1.2.3:15020'], labels: {namespace: bookinfo, pod: reviews-v1-abc}}]}]",
    )
    .unwrap();
    section.check().unwrap();
    static_targets(&section, &section.jobs[0]).remove(0)
}
