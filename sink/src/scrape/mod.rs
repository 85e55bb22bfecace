//! Scrape stage: pulls Prometheus text from targets (istiod's `:15014/metrics`, sidecars'
//! merged `:15020/stats/prometheus`, any static target) and feeds the samples into the same
//! export path and staleness machinery as the filter's reports.
//!
//! [`config`] holds the `scrape:` keys, [`target`] turns jobs into targets (with
//! [`relabel`]), [`fetch`] does one HTTP scrape, [`convert`] turns a body into samples,
//! [`scrape_loop`] runs one target, [`merge`] tracks which pods the filter reports. This module
//! owns the set of running loops; it must not parse, fetch or relabel itself.

pub mod config;
pub mod convert;
pub mod fetch;
pub mod merge;
pub mod relabel;
pub mod scrape_loop;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::ScrapeConfig;
use self::merge::ReportedPods;
use self::scrape_loop::{LoopContext, LoopState, ScrapeCounters};
use self::target::{static_targets, Target};
use crate::export::Exporter;

/// Why the scrape stage could not start.
#[derive(Debug, thiserror::Error)]
#[error("scrape: cannot build the HTTP client: {0}")]
pub struct ScrapeStartError(#[from] reqwest::Error);

struct RunningLoop {
    target: Target,
    state: watch::Sender<LoopState>,
    task: JoinHandle<()>,
}

/// The running scrape loops, keyed by (job, URL).
pub struct ScrapeStage {
    ctx: LoopContext,
    loops: Mutex<HashMap<(String, String), RunningLoop>>,
}

impl ScrapeStage {
    /// Starts one loop per static target of every job.
    pub fn start(
        config: &ScrapeConfig,
        exporter: Arc<Exporter>,
    ) -> Result<ScrapeStage, ScrapeStartError> {
        let ctx = LoopContext {
            client: fetch::client()?,
            exporter,
            reported: Arc::new(ReportedPods::new(config.merge.report_ttl.get())),
            prefer: config.merge.prefer,
            body_size_limit: config.body_size_limit,
            counters: Arc::new(ScrapeCounters::default()),
        };
        let stage = ScrapeStage {
            ctx,
            loops: Mutex::new(HashMap::new()),
        };
        for job in &config.jobs {
            let targets = static_targets(config, job);
            tracing::info!(job = %job.name, targets = targets.len(), "scrape job started");
            stage.set_targets(&job.name, targets);
        }
        Ok(stage)
    }

    /// The registry of pods the filter reports (fed by the report route's middleware).
    pub fn reported_pods(&self) -> Arc<ReportedPods> {
        self.ctx.reported.clone()
    }

    /// Counters over all loops.
    pub fn counters(&self) -> &ScrapeCounters {
        &self.ctx.counters
    }

    /// Makes `targets` the job's targets: new ones start scraping, changed ones restart,
    /// vanished ones get stale markers for all their series and stop.
    pub fn set_targets(&self, job: &str, targets: Vec<Target>) {
        let mut loops = self.loops.lock().expect("scrape loops lock");
        let wanted: HashMap<(String, String), Target> = targets
            .into_iter()
            .map(|t| ((job.to_owned(), t.url.clone()), t))
            .collect();
        let gone: Vec<(String, String)> = loops
            .iter()
            .filter(|(key, running)| key.0 == job && wanted.get(*key) != Some(&running.target))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            if let Some(running) = loops.remove(&key) {
                running.state.send_replace(LoopState::Removed);
            }
        }
        for (key, target) in wanted {
            if loops.contains_key(&key) {
                continue;
            }
            let (state, state_rx) = watch::channel(LoopState::Running);
            let task = tokio::spawn(scrape_loop::run(target.clone(), self.ctx.clone(), state_rx));
            loops.insert(
                key,
                RunningLoop {
                    target,
                    state,
                    task,
                },
            );
        }
    }

    /// The targets currently scraped.
    pub fn targets(&self) -> Vec<Target> {
        let loops = self.loops.lock().expect("scrape loops lock");
        loops.values().map(|l| l.target.clone()).collect()
    }

    /// Stops every loop (no stale markers: the targets still exist) and waits for them.
    pub async fn stop(&self) {
        let running: Vec<RunningLoop> = {
            let mut loops = self.loops.lock().expect("scrape loops lock");
            loops.drain().map(|(_, l)| l).collect()
        };
        for l in &running {
            l.state.send_replace(LoopState::Shutdown);
        }
        for l in running {
            let _ = l.task.await;
        }
    }
}
