//! `reload:` — who may ask for a reload besides SIGHUP, and the file watch.
//!
//! Owns these keys and their checks; it must not reload anything.

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;

/// `reload:` keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Serve `POST /-/reload` (on `serve.ops_listen` when set, else on `listen`), as
    /// Prometheus' `--web.enable-lifecycle` does. Off by default: SIGHUP always works.
    #[serde(default)]
    pub http: bool,
    /// Bearer token `POST /-/reload` requires (`Authorization: Bearer <token>`); absent = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Reload when the content of the config file (or its `prometheus_config` file) changes,
    /// as a mounted ConfigMap does when Kubernetes swaps its `..data` link.
    #[serde(default)]
    pub watch: bool,
    /// How often the watched files are read.
    #[serde(default = "default_watch_interval")]
    pub watch_interval: HumanDuration,
}

fn default_watch_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            http: false,
            token: None,
            watch: false,
            watch_interval: default_watch_interval(),
        }
    }
}

impl ReloadConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.token.as_deref() == Some("") {
            return Err("reload.token: must not be empty (leave it out for no token)".into());
        }
        if self.token.is_some() && !self.http {
            return Err("reload.token: set `reload.http: true` to serve POST /-/reload".into());
        }
        if self.watch_interval.is_zero() {
            return Err("reload.watch_interval: must be greater than 0".into());
        }
        Ok(())
    }
}
