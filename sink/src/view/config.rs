//! The `view` config section: the in-memory request summary served on `/v1/summary`.
//!
//! Owns the keys and their defaults only.

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;

/// `view:` — the in-memory summary of request metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewConfig {
    /// Keep the summary and serve `/v1/summary`.
    pub enabled: bool,
    /// Rates and quantiles are computed over this trailing window.
    pub window: HumanDuration,
}

impl Default for ViewConfig {
    fn default() -> Self {
        ViewConfig {
            enabled: true,
            window: HumanDuration::from_secs(30),
        }
    }
}

impl ViewConfig {
    /// Rules serde cannot express; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("view.window: must be greater than 0".into());
        }
        Ok(())
    }
}
