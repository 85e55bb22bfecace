//! The loop of one target: scrape every interval (at a fixed offset within it), convert, keep the target's series set in a
//! [`StalenessTracker`] (the same machinery as reports) and queue samples and stale markers.
//!
//! Stale markers go out for a series absent from the latest successful scrape, for every
//! scraped series when a scrape fails (`up` becomes 0), and for all series, `up` included,
//! when the target is removed. A sink shutdown sends none (the target still exists).
//! Owns the per-target cycle; it must not discover targets or talk to remote-write itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::config::Prefer;
use super::convert::{body_to_samples, is_filter_family, report_samples, ScrapeReport};
use super::fetch::fetch;
use super::merge::ReportedPods;
use super::metrics::JobMetrics;
use super::sharding::weight;
use super::target::Target;
use crate::export::remote_write::retry::now_ms;
use crate::export::Exporter;
use crate::series::Sample;
use crate::staleness::{Admission, ReportClock, StalenessTracker};

/// How a loop is told to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopState {
    Running,
    /// The target went away: mark all its series stale, then end.
    Removed,
    /// The sink stops, or another replica now scrapes the target: end without markers (the
    /// target still exists and its series go on).
    Shutdown,
}

/// Everything a loop uses besides its target.
#[derive(Clone)]
pub struct LoopContext {
    pub client: reqwest::Client,
    pub exporter: Arc<Exporter>,
    pub reported: Arc<ReportedPods>,
    pub prefer: Prefer,
    pub body_size_limit: usize,
}

struct TargetLoop {
    target: Target,
    ctx: LoopContext,
    metrics: Arc<JobMetrics>,
    tracker: StalenessTracker,
    /// Series in the tracker after the previous scrape (report series included).
    previous_series: usize,
    was_up: Option<bool>,
}

/// Runs `target` until `state` leaves [`LoopState::Running`].
pub async fn run(
    target: Target,
    ctx: LoopContext,
    metrics: Arc<JobMetrics>,
    mut state: watch::Receiver<LoopState>,
) {
    let first = tokio::time::Instant::now() + start_offset(&target);
    let mut tick = tokio::time::interval_at(first, target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut target_loop = TargetLoop {
        target,
        ctx,
        metrics,
        tracker: StalenessTracker::new(u32::MAX),
        previous_series: 0,
        was_up: None,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => target_loop.scrape_once().await,
            _ = async { state.wait_for(|s| *s != LoopState::Running).await.is_ok() } => break,
        }
    }
    if *state.borrow() == LoopState::Removed {
        target_loop.mark_all_stale();
    }
}

impl TargetLoop {
    fn admit(&mut self, samples: &[Sample], scrape_ms: i64) -> Option<Vec<Sample>> {
        let clock = ReportClock {
            proxy_start_ms: 0,
            timestamp_ms: scrape_ms,
            interval_ms: u32::try_from(self.target.interval.as_millis()).unwrap_or(u32::MAX),
        };
        match self
            .tracker
            .admit(tracker_key(&self.target), clock, samples, Instant::now())
        {
            Admission::Accepted { stale_markers } => Some(stale_markers),
            Admission::OutOfOrder { last_timestamp_ms } => {
                tracing::warn!(url = %self.target.url, scrape_ms, last_timestamp_ms, "wall clock went back: scrape result dropped");
                None
            }
        }
    }

    fn send(&self, stale_markers: &[Sample], samples: &[Sample]) {
        self.ctx.exporter.enqueue(stale_markers);
        self.ctx.exporter.enqueue(samples);
        self.metrics
            .stale_markers
            .fetch_add(stale_markers.len() as u64, Ordering::Relaxed);
    }

    async fn scrape_once(&mut self) {
        let started = Instant::now();
        let scrape_ms = now_ms();
        let fetched = fetch(
            &self.ctx.client,
            &self.target.url,
            self.target.timeout,
            self.ctx.body_size_limit,
        )
        .await;
        let duration = started.elapsed();
        self.metrics.observe_duration(duration);
        let (mut samples, scraped) = match fetched {
            Ok(fetched) => {
                let drop_filter_families = self.ctx.prefer == Prefer::Filter
                    && self
                        .target
                        .pod()
                        .is_some_and(|pod| self.ctx.reported.is_reported(&pod, Instant::now()));
                let drop_family = |family: &str| drop_filter_families && is_filter_family(family);
                let converted = body_to_samples(
                    &fetched.body,
                    fetched.content_type.as_deref(),
                    &self.target,
                    scrape_ms,
                    &drop_family,
                );
                self.metrics
                    .scrapes_succeeded
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .samples
                    .fetch_add(converted.scraped, Ordering::Relaxed);
                self.metrics
                    .bad_lines
                    .fetch_add(converted.bad_lines, Ordering::Relaxed);
                if converted.bad_lines > 0 || converted.duplicates > 0 {
                    tracing::debug!(url = %self.target.url, bad_lines = converted.bad_lines, duplicates = converted.duplicates, "scrape body had unusable samples");
                }
                self.log_up(true, None);
                (converted.samples, Some(converted.scraped))
            }
            Err(e) => {
                self.metrics.scrapes_failed.fetch_add(1, Ordering::Relaxed);
                self.log_up(false, Some(&e.to_string()));
                (Vec::new(), None)
            }
        };
        let post_relabeling = samples.len() as u64;
        let report = ScrapeReport {
            up: scraped.is_some(),
            duration_seconds: duration.as_secs_f64(),
            samples_scraped: scraped.unwrap_or(0),
            samples_post_relabeling: post_relabeling,
            series_added: 0,
        };
        let report_series = report_samples(&self.target, report, scrape_ms);
        let report_count = report_series.len();
        samples.extend(report_series);
        let Some(stale_markers) = self.admit(&samples, scrape_ms) else {
            return;
        };
        // Series kept from the previous scrape = previous - vanished; the rest are new.
        let kept = self.previous_series - stale_markers.len();
        let added_total = samples.len() - kept;
        let report_added = if self.previous_series == 0 {
            report_count
        } else {
            0
        };
        let added = added_total.saturating_sub(report_added);
        if let Some(slot) = samples
            .iter_mut()
            .rev()
            .find(|s| &*s.series.name == "scrape_series_added")
        {
            slot.value = added as f64;
        }
        self.previous_series = samples.len();
        self.send(&stale_markers, &samples);
    }

    fn log_up(&mut self, up: bool, error: Option<&str>) {
        if self.was_up != Some(up) {
            match error {
                Some(error) => {
                    tracing::warn!(job = %self.target.job, url = %self.target.url, %error, "scrape failed: target down")
                }
                None => tracing::info!(job = %self.target.job, url = %self.target.url, "target up"),
            }
        }
        self.was_up = Some(up);
    }

    fn mark_all_stale(&mut self) {
        let Some(stale_markers) = self.admit(&[], now_ms()) else {
            return;
        };
        tracing::info!(job = %self.target.job, url = %self.target.url, series = stale_markers.len(), "target removed: series marked stale");
        self.send(&stale_markers, &[]);
        self.previous_series = 0;
    }
}

/// When in its interval a target is scraped: a fixed fraction of the interval derived from
/// its URL, as Prometheus spreads its targets, so that many targets (and the remote-write
/// queue behind them) do not all burst at the same instant.
fn start_offset(target: &Target) -> std::time::Duration {
    let interval_ms = u64::try_from(target.interval.as_millis()).unwrap_or(u64::MAX);
    let offset_ms = weight("scrape-offset", &target.url) % interval_ms.max(1);
    std::time::Duration::from_millis(offset_ms)
}

/// The tracker's key: one tracker per loop, so only the target's URL (for readability).
fn tracker_key(target: &Target) -> crate::staleness::PodKey {
    (String::new(), target.url.clone())
}
