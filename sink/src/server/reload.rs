//! The reloader: serves reload requests one at a time. Each re-reads the config file (and its
//! `prometheus_config` file), refuses a config that does not load or that changes a key only a
//! restart can change (see `config::fixed_key_change`), then applies the endpoint and job sets
//! to the running stages; the outcome is logged and counted either way.
//!
//! Owns the order of a reload's steps; what survives and what restarts is decided by each
//! stage (`RemoteWriteExporter::apply`, `ScrapeStage::apply_jobs`).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{fixed_key_change, source_files, SinkConfig};
use crate::export::remote_write::RemoteWriteExporter;
use crate::floor::clock::now_ms;
use crate::ops::metrics::SinkMetrics;
use crate::reload::{ReloadMetrics, ReloadRequest};
use crate::scrape::ScrapeStage;
use crate::spool::Spool;

/// What a reload changes, and the config it compares with.
pub(super) struct Reloader {
    /// The config file; `None` for a sink started from a config in memory (nothing to re-read).
    pub path: Option<PathBuf>,
    pub running: SinkConfig,
    pub exporter: Arc<RemoteWriteExporter>,
    pub scrape: Option<Arc<ScrapeStage>>,
    pub spool: Option<Arc<Spool>>,
    pub sink_metrics: Arc<SinkMetrics>,
    pub metrics: Arc<ReloadMetrics>,
}

impl Reloader {
    /// Serves `requests` until every trigger is gone.
    pub fn spawn(mut self, mut requests: mpsc::Receiver<ReloadRequest>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let outcome = self.reload();
                match &outcome {
                    Ok(summary) => {
                        tracing::info!(cause = request.cause, %summary, "config reloaded")
                    }
                    Err(why) => {
                        tracing::error!(cause = request.cause, error = %why, "config reload refused: the running config keeps going")
                    }
                }
                self.metrics.record(outcome.is_ok(), now_ms());
                let _ = request.reply.send(outcome.map(|_| ()));
            }
        })
    }

    /// One reload; `Ok` holds a summary of the changes, `Err` why nothing changed.
    fn reload(&mut self) -> Result<String, String> {
        let path = self
            .path
            .as_ref()
            .ok_or("the sink was started without a config file")?;
        let new = SinkConfig::load(path).map_err(|e| e.to_string())?;
        if let Some(key) = fixed_key_change(&self.running, &new) {
            return Err(format!(
                "{key}: cannot change without a restart (only remote_write and scrape.jobs change live)"
            ));
        }
        if self.scrape.is_none() != new.scrape.is_none() {
            return Err("scrape: cannot be added or removed without a restart".into());
        }
        let endpoints = self
            .exporter
            .apply(
                &new.remote_write,
                self.spool.as_deref(),
                &self.sink_metrics,
                new.shutdown_timeout.get(),
            )
            .map_err(|e| format!("remote_write: {e}"))?;
        let jobs = match (&self.scrape, &new.scrape) {
            (Some(stage), Some(config)) => Some(
                stage
                    .apply_jobs(config)
                    .map_err(|e| format!("scrape.jobs: {e} (remote_write was applied)"))?,
            ),
            _ => None,
        };
        self.running = new;
        Ok(format!(
            "remote_write: {endpoints:?}; scrape.jobs: {jobs:?}"
        ))
    }
}

/// A hash of the content of the config file and its `prometheus_config` file (`None` when
/// the config file cannot be read), for `reload.watch`.
pub(super) fn config_fingerprint(path: &Path) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (i, file) in source_files(path).iter().enumerate() {
        match std::fs::read(file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(_) if i > 0 => 0u8.hash(&mut hasher),
            Err(_) => return None,
        }
    }
    Some(hasher.finish())
}
