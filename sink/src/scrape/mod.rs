//! Scrape stage: pulls Prometheus text from targets (istiod's `:15014/metrics`, sidecars'
//! merged `:15020/stats/prometheus`, any static target, pods found by `kubernetes_sd`) and
//! feeds the samples into the same export path and staleness machinery as the filter's
//! reports.
//!
//! [`config`] holds the `scrape:` keys, [`target`] turns discovered labels into targets (with
//! [`relabel`]), [`pods`] and [`kubernetes`] discover pods, [`fetch`] does one HTTP scrape,
//! [`convert`] turns a body into samples, [`scrape_loop`] runs one target, [`merge`] tracks
//! which pods the filter reports. This module owns the set of running loops and discovery
//! tasks; it must not parse, fetch or relabel itself.

pub mod config;
pub mod convert;
pub mod fetch;
pub mod kubernetes;
pub mod merge;
pub mod pods;
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
pub struct TargetSet {
    ctx: LoopContext,
    loops: Mutex<HashMap<(String, String), RunningLoop>>,
}

impl TargetSet {
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

    async fn stop(&self) {
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

/// The scrape stage: target loops plus discovery tasks.
pub struct ScrapeStage {
    targets: Arc<TargetSet>,
    discovery: Vec<JoinHandle<()>>,
}

impl ScrapeStage {
    /// Starts one loop per static target of every job and one discovery task per
    /// `kubernetes_sd` job.
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
        let targets = Arc::new(TargetSet {
            ctx,
            loops: Mutex::new(HashMap::new()),
        });
        let section = Arc::new(config.clone());
        let mut discovery = Vec::new();
        for job in &config.jobs {
            let fixed = static_targets(config, job);
            tracing::info!(job = %job.name, static_targets = fixed.len(), kubernetes_sd = job.kubernetes_sd.is_some(), "scrape job started");
            match &job.kubernetes_sd {
                // Discovered pods replace the job's targets as a whole.
                Some(sd) => discovery.push(tokio::spawn(kubernetes::run_pod_discovery(
                    section.clone(),
                    job.clone(),
                    sd.clone(),
                    targets.clone(),
                ))),
                None => targets.set_targets(&job.name, fixed),
            }
        }
        Ok(ScrapeStage { targets, discovery })
    }

    /// The registry of pods the filter reports (fed by the report route's middleware).
    pub fn reported_pods(&self) -> Arc<ReportedPods> {
        self.targets.ctx.reported.clone()
    }

    /// Counters over all loops.
    pub fn counters(&self) -> &ScrapeCounters {
        &self.targets.ctx.counters
    }

    /// See [`TargetSet::set_targets`].
    pub fn set_targets(&self, job: &str, targets: Vec<Target>) {
        self.targets.set_targets(job, targets);
    }

    /// The targets currently scraped.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.targets()
    }

    /// Stops discovery and every loop (no stale markers: the targets still exist).
    pub async fn stop(&self) {
        for task in &self.discovery {
            task.abort();
        }
        self.targets.stop().await;
    }
}
