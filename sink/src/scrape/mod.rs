//! Scrape stage: pulls Prometheus text from targets (istiod's `:15014/metrics`, sidecars'
//! merged `:15020/stats/prometheus`, any static target, pods found by `kubernetes_sd`) and
//! feeds the samples into the same export path and staleness machinery as the filter's
//! reports. With `sharding`, each replica scrapes only the targets it owns.
//!
//! [`config`] holds the `scrape:` keys, [`target`] turns discovered labels into targets (with
//! [`relabel`]), [`pods`] and [`kubernetes`] discover pods, [`membership`] and [`sharding`]
//! decide which replica scrapes a target, [`fetch`] does one HTTP scrape, [`convert`] turns a
//! body into samples through a target's [`series_cache`], [`scrape_loop`] runs one target,
//! [`source_merge`] holds the merge rule between the filter's reports and scrapes, [`metrics`] renders the stage's self-metrics. This module
//! owns the set of running loops and discovery tasks; it must not parse, fetch or relabel
//! itself.

pub mod chunks;
pub mod config;
pub mod convert;
pub mod fetch;
pub mod kubernetes;
pub mod membership;
pub mod metrics;
pub mod pods;
pub mod relabel;
pub mod scrape_loop;
pub mod series_cache;
pub mod sharding;
pub mod source_merge;
pub mod target;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::ScrapeConfig;
use self::fetch::JobClient;
use self::metrics::ScrapeMetrics;
use self::scrape_loop::{LoopContext, LoopState};
use self::sharding::{target_key, Membership};
use self::source_merge::SourceMerge;
use self::target::{static_targets, Target};
use crate::export::remote_write::RemoteWriteExporter;
use crate::floor::http::client::ClientError;
use crate::ops::metrics::SinkMetrics;
use crate::view::ViewTap;

/// Why the scrape stage could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot build a scrape client: {0}")]
pub struct ScrapeStartError(ClientError);

impl From<ClientError> for ScrapeStartError {
    fn from(error: ClientError) -> Self {
        ScrapeStartError(error)
    }
}

struct RunningLoop {
    target: Target,
    state: watch::Sender<LoopState>,
    task: JoinHandle<()>,
}

/// A loop's key: (job, URL).
type LoopKey = (String, String);

/// The targets of every job and the loops of those this replica owns.
struct Targets {
    /// Every job's targets, whichever replica scrapes them.
    all: HashMap<String, Vec<Target>>,
    /// Without sharding this stays [`Membership::Unknown`]: every target is owned.
    membership: Membership,
    loops: HashMap<LoopKey, RunningLoop>,
}

/// The running scrape loops and what they are derived from.
pub struct TargetSet {
    ctx: LoopContext,
    metrics: Arc<ScrapeMetrics>,
    inner: Mutex<Targets>,
}

impl TargetSet {
    /// Makes `targets` the job's targets: those this replica owns and does not scrape yet
    /// start, changed ones restart, vanished ones get stale markers for all their series and
    /// stop.
    pub fn set_targets(&self, job: &str, targets: Vec<Target>) {
        self.metrics
            .job(job)
            .targets
            .store(targets.len() as u64, Ordering::Relaxed);
        self.ctx
            .merge
            .set_job_pods(job, targets.iter().filter_map(Target::pod).collect());
        let mut inner = self.inner.lock().expect("scrape targets lock");
        inner.all.insert(job.to_owned(), targets);
        self.apply(&mut inner, job);
    }

    /// Applies a new membership to every job: targets another replica now owns stop without
    /// stale markers (their series go on from there), targets this one gained start.
    pub fn set_membership(&self, membership: Membership) {
        let mut inner = self.inner.lock().expect("scrape targets lock");
        inner.membership = membership;
        let jobs: Vec<String> = inner.all.keys().cloned().collect();
        for job in jobs {
            self.apply(&mut inner, &job);
        }
    }

    /// The membership applied last.
    pub fn membership(&self) -> Membership {
        self.inner
            .lock()
            .expect("scrape targets lock")
            .membership
            .clone()
    }

    fn apply(&self, inner: &mut Targets, job: &str) {
        let Targets {
            all,
            membership,
            loops,
        } = inner;
        let all_of_job: HashMap<LoopKey, &Target> = all
            .get(job)
            .into_iter()
            .flatten()
            .map(|t| ((job.to_owned(), t.url.clone()), t))
            .collect();
        let wanted: HashMap<&LoopKey, &Target> = all_of_job
            .iter()
            .filter(|(key, _)| membership.owns(&target_key(&key.0, &key.1)))
            .map(|(key, t)| (key, *t))
            .collect();
        let ending: Vec<LoopKey> = loops
            .iter()
            .filter(|(key, running)| key.0 == job && wanted.get(key) != Some(&&running.target))
            .map(|(key, _)| key.clone())
            .collect();
        for key in ending {
            let Some(running) = loops.remove(&key) else {
                continue;
            };
            let handed_over = all_of_job.get(&key) == Some(&&running.target);
            running.state.send_replace(if handed_over {
                LoopState::Shutdown
            } else {
                LoopState::Removed
            });
        }
        let job_metrics = self.metrics.job(job);
        job_metrics
            .targets_owned
            .store(wanted.len() as u64, Ordering::Relaxed);
        // Keyed by the configured job: relabeling may give a target another `job` label.
        let client = self
            .ctx
            .clients
            .get(job)
            .expect("every configured job has its client")
            .clone();
        for (key, target) in wanted {
            if loops.contains_key(key) {
                continue;
            }
            let (state, state_rx) = watch::channel(LoopState::Running);
            let task = tokio::spawn(scrape_loop::run(
                target.clone(),
                client.clone(),
                self.ctx.clone(),
                job_metrics.clone(),
                state_rx,
            ));
            loops.insert(
                key.clone(),
                RunningLoop {
                    target: target.clone(),
                    state,
                    task,
                },
            );
        }
    }

    /// The targets this replica currently scrapes.
    pub fn targets(&self) -> Vec<Target> {
        let inner = self.inner.lock().expect("scrape targets lock");
        inner.loops.values().map(|l| l.target.clone()).collect()
    }

    async fn stop(&self) {
        let running: Vec<RunningLoop> = {
            let mut inner = self.inner.lock().expect("scrape targets lock");
            inner.loops.drain().map(|(_, l)| l).collect()
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
    /// Starts one loop per static target of every job, one discovery task per
    /// `kubernetes_sd` job and, with `sharding`, the membership watcher; registers the
    /// stage's self-metrics with `sink_metrics`; `view` is shown every scrape's samples.
    pub fn start(
        config: &ScrapeConfig,
        exporter: Arc<RemoteWriteExporter>,
        sink_metrics: &SinkMetrics,
        view: Option<ViewTap>,
    ) -> Result<ScrapeStage, ScrapeStartError> {
        let config = &config.with_builtin_jobs();
        let metrics = Arc::new(ScrapeMetrics::new(config.sharding.is_some()));
        sink_metrics.add_section(metrics.clone());
        let member = config.sharding.as_ref().map(|s| s.member.as_str());
        let mut clients = HashMap::new();
        for (i, job) in config.jobs.iter().enumerate() {
            let client = JobClient::new(job, member, &format!("scrape.jobs[{i}]"))?;
            clients.insert(job.name.clone(), client);
        }
        let ctx = LoopContext {
            clients: Arc::new(clients),
            exporter,
            merge: Arc::new(SourceMerge::new(&config.merge)),
            body_size_limit: config.body_size_limit,
            view,
        };
        let targets = Arc::new(TargetSet {
            ctx,
            metrics: metrics.clone(),
            inner: Mutex::new(Targets {
                all: HashMap::new(),
                membership: match config.sharding {
                    Some(_) => Membership::Starting,
                    None => Membership::Unknown,
                },
                loops: HashMap::new(),
            }),
        });
        let section = Arc::new(config.clone());
        let mut discovery = Vec::new();
        if let (Some(sharding), Some(membership_metrics)) =
            (&config.sharding, metrics.membership.clone())
        {
            tracing::info!(service = %sharding.service, namespace = %sharding.namespace, member = %sharding.member, "scrape sharding: waiting for the Service's EndpointSlices");
            discovery.push(tokio::spawn(membership::run_membership(
                sharding.clone(),
                config.interval.get(),
                targets.clone(),
                membership_metrics,
            )));
        }
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

    /// The merge rule between the filter's reports and the scrapes (ingest notes each
    /// validated report there).
    pub fn source_merge(&self) -> Arc<SourceMerge> {
        self.targets.ctx.merge.clone()
    }

    /// See [`TargetSet::set_targets`].
    pub fn set_targets(&self, job: &str, targets: Vec<Target>) {
        self.targets.set_targets(job, targets);
    }

    /// The targets this replica currently scrapes.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.targets()
    }

    /// The sharding membership applied last ([`Membership::Unknown`] without sharding).
    pub fn membership(&self) -> Membership {
        self.targets.membership()
    }

    /// Stops discovery and every loop (no stale markers: the targets still exist).
    pub async fn stop(&self) {
        for task in &self.discovery {
            task.abort();
        }
        self.targets.stop().await;
    }
}
