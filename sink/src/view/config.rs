//! The `view` config section: the in-memory live view served on `/`, `/v1/live` and
//! `/v1/summary`.
//!
//! Owns the keys, their defaults and their bounds only.

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;

/// `view:` — the in-memory live view of the mesh and of the sink itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewConfig {
    /// Keep the view and serve `/`, `/v1/live` and `/v1/summary`.
    pub enabled: bool,
    /// Rates and quantiles are computed over this trailing window.
    pub window: HumanDuration,
    /// How often a point is added to the trend lines.
    pub trend_step: HumanDuration,
    /// Points kept per trend line (the oldest is dropped).
    pub trend_points: usize,
    /// Pods (report channels) and scrape targets whose snapshots are kept; more are ignored.
    pub max_sources: usize,
    /// Destination services shown (requests and TCP); more are counted as dropped.
    pub max_services: usize,
    /// Graph edges (source workload → destination service) shown, and as many ztunnel workload
    /// pairs; more are counted as dropped.
    pub max_edges: usize,
    /// Access-log lines kept (filter-shipped and tailed together, the oldest dropped).
    pub max_log_lines: usize,
}

impl Default for ViewConfig {
    fn default() -> Self {
        ViewConfig {
            enabled: true,
            window: HumanDuration::from_secs(30),
            trend_step: HumanDuration::from_secs(2),
            trend_points: 60,
            max_sources: 5000,
            max_services: 200,
            max_edges: 500,
            max_log_lines: 500,
        }
    }
}

/// The largest trend length accepted (a trend line is a few numbers per service and point).
const MAX_TREND_POINTS: usize = 1000;

impl ViewConfig {
    /// Rules serde cannot express; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("view.window: must be greater than 0".into());
        }
        if self.trend_step.is_zero() {
            return Err("view.trend_step: must be greater than 0".into());
        }
        if !(1..=MAX_TREND_POINTS).contains(&self.trend_points) {
            return Err(format!(
                "view.trend_points: must be between 1 and {MAX_TREND_POINTS}"
            ));
        }
        for (key, cap) in [
            ("max_sources", self.max_sources),
            ("max_services", self.max_services),
            ("max_edges", self.max_edges),
            ("max_log_lines", self.max_log_lines),
        ] {
            if cap == 0 {
                return Err(format!("view.{key}: must be at least 1"));
            }
        }
        Ok(())
    }
}
