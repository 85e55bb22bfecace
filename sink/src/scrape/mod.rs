//! Scrape stage: pulls Prometheus text from targets (istiod's `:15014/metrics`, sidecars'
//! merged `:15020/stats/prometheus`, any static target, pods found by `kubernetes_sd`) and
//! feeds the samples into the same export path and staleness machinery as the filter's
//! reports. With `sharding`, each replica scrapes only the targets it owns.
//!
//! [`config`] holds the `scrape:` keys, [`target`] turns discovered labels into targets (with
//! [`relabel`]), [`pods`] and [`kubernetes`] discover pods, [`membership`] and [`sharding`]
//! decide which replica scrapes a target, [`fetch`] does one HTTP scrape, [`convert`] turns a
//! body into samples through a target's [`series_cache`] (keyed by [`text_key`]),
//! [`scrape_loop`] runs one target, [`source_merge`] holds the merge rule between the filter's
//! reports and scrapes, [`metrics`] renders the stage's self-metrics. This module
//! owns the set of running loops and discovery tasks; it must not parse, fetch or relabel
//! itself.

mod body_framing;
pub mod chunks;
pub mod config;
pub mod convert;
pub mod fetch;
pub mod kubernetes;
mod marks;
pub mod membership;
pub mod metrics;
mod plain_http;
pub mod pods;
/// The relabel rules live in the floor (remote-write endpoints apply them too).
pub use crate::floor::relabel;
pub mod scrape_loop;
pub mod series_cache;
pub mod sharding;
pub mod source_merge;
pub mod target;
pub mod text_key;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::config::{ScrapeConfig, ScrapeJob};
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

/// The clients of `jobs` (with their index in `scrape.jobs`, for error messages).
fn job_clients<'a>(
    config: &ScrapeConfig,
    jobs: impl Iterator<Item = (usize, &'a ScrapeJob)>,
) -> Result<Vec<JobClient>, ScrapeStartError> {
    let member = config.sharding.as_ref().map(|s| s.member.as_str());
    jobs.map(|(i, job)| Ok(JobClient::new(job, member, &format!("scrape.jobs[{i}]"))?))
        .collect()
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
    /// Each configured job's client, by the configured job name (not the target's `job`
    /// label); a job without one is no longer configured.
    clients: HashMap<String, JobClient>,
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
        let mut inner = self.inner.lock().expect("scrape targets lock");
        if !inner.clients.contains_key(job) {
            // The job left the config at a reload while its discovery was answering.
            return;
        }
        self.metrics
            .job(job)
            .targets
            .store(targets.len() as u64, Ordering::Relaxed);
        self.ctx
            .merge
            .set_job_pods(job, targets.iter().filter_map(Target::pod).collect());
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
            clients,
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
        end_unwanted_loops(loops, job, &wanted, &all_of_job);
        let job_metrics = self.metrics.job(job);
        job_metrics
            .targets_owned
            .store(wanted.len() as u64, Ordering::Relaxed);
        // Keyed by the configured job: relabeling may give a target another `job` label.
        let Some(client) = clients.get(job).cloned() else {
            return;
        };
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

    /// Adds a job (or replaces its client); its targets follow with
    /// [`TargetSet::set_targets`].
    fn add_job(&self, job: &str, client: JobClient) {
        let mut inner = self.inner.lock().expect("scrape targets lock");
        inner.clients.insert(job.to_owned(), client);
    }

    /// Ends a job's loops, which send `end` (stale markers for a job that left the config,
    /// none for one that is replaced), and forgets its targets and client.
    fn end_job(&self, job: &str, end: LoopState) {
        let mut inner = self.inner.lock().expect("scrape targets lock");
        inner.clients.remove(job);
        inner.all.remove(job);
        inner.loops.retain(|key, running| {
            let keep = key.0 != job;
            if !keep {
                running.state.send_replace(end);
            }
            keep
        });
        self.ctx.merge.set_job_pods(job, Default::default());
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
    /// The `scrape:` section running now (its jobs change at a reload).
    section: Mutex<Arc<ScrapeConfig>>,
    /// Each `kubernetes_sd` job's discovery task, by job name.
    discovery: Mutex<HashMap<String, JoinHandle<()>>>,
    membership: Option<JoinHandle<()>>,
}

/// What a reload did to the scrape jobs, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
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
        let clients = job_clients(config, config.jobs.iter().enumerate())?;
        let metrics = Arc::new(ScrapeMetrics::new(config.sharding.is_some()));
        sink_metrics.add_section(metrics.clone());
        let ctx = LoopContext {
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
                clients: HashMap::new(),
            }),
        });
        let mut membership = None;
        if let (Some(sharding), Some(membership_metrics)) =
            (&config.sharding, metrics.membership.clone())
        {
            tracing::info!(service = %sharding.service, namespace = %sharding.namespace, member = %sharding.member, "scrape sharding: waiting for the Service's EndpointSlices");
            membership = Some(tokio::spawn(membership::run_membership(
                sharding.clone(),
                config.interval.get(),
                targets.clone(),
                membership_metrics,
            )));
        }
        let stage = ScrapeStage {
            targets,
            section: Mutex::new(Arc::new(config.clone())),
            discovery: Mutex::new(HashMap::new()),
            membership,
        };
        let section = stage.section();
        for (job, client) in config.jobs.iter().zip(clients) {
            stage.start_job(&section, job, client);
        }
        Ok(stage)
    }

    fn section(&self) -> Arc<ScrapeConfig> {
        self.section.lock().expect("scrape section lock").clone()
    }

    /// Starts a job: its client, then its static targets or its discovery task.
    fn start_job(&self, section: &Arc<ScrapeConfig>, job: &ScrapeJob, client: JobClient) {
        self.targets.add_job(&job.name, client);
        let fixed = static_targets(section, job);
        tracing::info!(job = %job.name, static_targets = fixed.len(), kubernetes_sd = job.kubernetes_sd.is_some(), "scrape job started");
        match &job.kubernetes_sd {
            // Discovered pods replace the job's targets as a whole.
            Some(sd) => {
                let task = tokio::spawn(kubernetes::run_pod_discovery(
                    section.clone(),
                    job.clone(),
                    sd.clone(),
                    self.targets.clone(),
                ));
                let mut discovery = self.discovery.lock().expect("discovery lock");
                if let Some(previous) = discovery.insert(job.name.clone(), task) {
                    previous.abort();
                }
            }
            None => self.targets.set_targets(&job.name, fixed),
        }
    }

    /// Ends a job: its discovery task, then its loops (see [`TargetSet::end_job`]).
    fn end_job(&self, job: &str, end: LoopState) {
        if let Some(task) = self.discovery.lock().expect("discovery lock").remove(job) {
            task.abort();
        }
        self.targets.end_job(job, end);
    }

    /// Makes `config.jobs` the running jobs: a job whose config is unchanged keeps its loops
    /// (and their series caches) untouched; a removed job's targets get stale markers and
    /// stop; a changed job's loops stop without markers and the job starts again (series its
    /// new config no longer yields are not marked stale). Only the jobs may differ from the
    /// running section (the caller refuses other changes). When a job's client cannot be
    /// built nothing changes.
    pub fn apply_jobs(&self, config: &ScrapeConfig) -> Result<JobChanges, ScrapeStartError> {
        let config = &config.with_builtin_jobs();
        let old = self.section();
        let running = |name: &str| old.jobs.iter().find(|j| j.name == name);
        let starting = config
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, job)| running(&job.name) != Some(*job));
        let clients = job_clients(config, starting.clone())?;
        let new = Arc::new(config.clone());
        *self.section.lock().expect("scrape section lock") = new.clone();
        let mut changes = JobChanges::default();
        for gone in old.jobs.iter() {
            if !config.jobs.iter().any(|j| j.name == gone.name) {
                self.end_job(&gone.name, LoopState::Removed);
                changes.removed.push(gone.name.clone());
            }
        }
        for ((_, job), client) in starting.zip(clients) {
            if running(&job.name).is_some() {
                self.end_job(&job.name, LoopState::Shutdown);
                changes.changed.push(job.name.clone());
            } else {
                changes.added.push(job.name.clone());
            }
            self.start_job(&new, job, client);
        }
        Ok(changes)
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
        for task in self.discovery.lock().expect("discovery lock").values() {
            task.abort();
        }
        if let Some(task) = &self.membership {
            task.abort();
        }
        self.targets.stop().await;
    }
}

/// Stops the job's loops whose target is no longer wanted here: `Shutdown` when the target
/// still exists (another replica owns it now, so no stale markers), `Removed` when it is gone.
fn end_unwanted_loops(
    loops: &mut HashMap<LoopKey, RunningLoop>,
    job: &str,
    wanted: &HashMap<&LoopKey, &Target>,
    all_of_job: &HashMap<LoopKey, &Target>,
) {
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
}
