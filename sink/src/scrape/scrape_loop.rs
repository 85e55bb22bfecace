//! The loop of one target: scrape every interval (at a fixed offset within it), convert
//! through the target's [`SeriesCache`] (which also finds the series that vanished) and queue
//! samples and stale markers, waiting for room in the remote-write queues rather than losing
//! samples. All of a target's samples go to one remote-write lane (picked by its URL), which
//! keeps each series' order and the target's series together in a batch.
//!
//! Stale markers go out for a series absent from the latest successful scrape, for every
//! scraped series when a scrape fails (`up` becomes 0), and for all series, `up` included,
//! when the target is removed. A sink shutdown sends none (the target still exists).
//! Owns the per-target cycle; it must not discover targets or talk to remote-write itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::chunks::ChunkConversion;
use super::convert::{ReportSeries, ScrapeReport, ScrapedSamples};
use super::fetch::{fetch, FetchError, JobClient};
use super::metrics::JobMetrics;
use super::plain_http::PlainUrl;
use super::series_cache::SeriesCache;
use super::sharding::weight;
use super::source_merge::SourceMerge;
use super::target::Target;
use crate::export::remote_write::RemoteWriteExporter;
use crate::floor::clock::now_ms;
use crate::view::ViewTap;
use meshtap_remotewrite::sample::ExportSample;

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
    pub exporter: Arc<RemoteWriteExporter>,
    pub merge: Arc<SourceMerge>,
    pub body_size_limit: usize,
    /// Shown every scrape's queued samples.
    pub view: Option<ViewTap>,
}

/// What one scrape gave: its samples, the stale markers of what vanished, and the samples in
/// the body (`None`: the scrape failed).
struct ScrapeOutcome {
    samples: Vec<ExportSample>,
    stale_markers: Vec<ExportSample>,
    scraped: Option<u64>,
}

struct TargetLoop {
    target: Target,
    /// The target's URL as the plain-HTTP client takes it (if it does), parsed once.
    plain_url: Option<PlainUrl>,
    client: JobClient,
    ctx: LoopContext,
    metrics: Arc<JobMetrics>,
    cache: SeriesCache,
    report_series: ReportSeries,
    /// Timestamp of the last scrape whose samples were queued.
    last_scrape_ms: Option<i64>,
    /// The cache's series as last added to the job's `series` gauge.
    counted_series: u64,
    /// Picks the remote-write lane of all the target's samples.
    lane_shard: u64,
    was_up: Option<bool>,
}

/// Runs `target` until `state` leaves [`LoopState::Running`]. A scrape waiting for room in
/// the remote-write queues is abandoned when the state changes.
pub async fn run(
    target: Target,
    client: JobClient,
    ctx: LoopContext,
    metrics: Arc<JobMetrics>,
    mut state: watch::Receiver<LoopState>,
) {
    let first = tokio::time::Instant::now() + start_offset(&target);
    let mut tick = tokio::time::interval_at(first, target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cache = SeriesCache::default();
    let report_series = ReportSeries::new(&target, cache.interner());
    let lane_shard = weight("remote-write-lane", &target.url);
    let mut target_loop = TargetLoop {
        plain_url: PlainUrl::parse(&target.url),
        target,
        client,
        ctx,
        metrics,
        cache,
        report_series,
        last_scrape_ms: None,
        counted_series: 0,
        lane_shard,
        was_up: None,
    };
    loop {
        tokio::select! {
            _ = async { tick.tick().await; target_loop.scrape_once().await } => {}
            _ = async { state.wait_for(|s| *s != LoopState::Running).await.is_ok() } => break,
        }
    }
    if *state.borrow() == LoopState::Removed {
        target_loop.mark_all_stale();
    }
    target_loop
        .metrics
        .series
        .fetch_sub(target_loop.counted_series, Ordering::Relaxed);
}

impl TargetLoop {
    async fn scrape_once(&mut self) {
        let started = Instant::now();
        let scrape_ms = now_ms();
        if let Some(last) = self.last_scrape_ms.filter(|last| scrape_ms <= *last) {
            tracing::warn!(url = %self.target.url, scrape_ms, last_timestamp_ms = last, "wall clock went back: scrape skipped");
            return;
        }
        let drop_filter_families = !self
            .ctx
            .merge
            .scrape_keeps_filter_families(self.target.pod().as_ref(), Instant::now());
        let mut conversion = ChunkConversion::new(
            &self.target,
            scrape_ms,
            drop_filter_families,
            &mut self.cache,
        );
        let fetched = fetch(
            &self.client,
            &self.target.url,
            self.plain_url.as_ref(),
            self.target.timeout,
            self.ctx.body_size_limit,
            &mut conversion,
        )
        .await;
        let duration = started.elapsed();
        self.metrics.observe_duration(duration);
        let outcome = match fetched {
            Ok(()) => {
                let converted = conversion.finish();
                self.converted(converted, scrape_ms)
            }
            Err(e) => self.failed(&e, scrape_ms),
        };
        let samples = self.with_report(outcome.samples, outcome.scraped, duration, scrape_ms);
        self.count_series();
        self.last_scrape_ms = Some(scrape_ms);
        self.queue(outcome.stale_markers, samples, scrape_ms).await;
    }

    /// A converted body ends the scrape of the cache (stale markers for what vanished);
    /// counts the scrape.
    fn converted(&mut self, mut converted: ScrapedSamples, scrape_ms: i64) -> ScrapeOutcome {
        self.ctx
            .exporter
            .observe_scraped_families(std::mem::take(&mut converted.families));
        let stale_markers = self.cache.finish(scrape_ms);
        let metrics = &self.metrics;
        metrics.scrapes_succeeded.fetch_add(1, Ordering::Relaxed);
        metrics
            .samples
            .fetch_add(converted.scraped, Ordering::Relaxed);
        metrics
            .bad_lines
            .fetch_add(converted.bad_lines, Ordering::Relaxed);
        if converted.bad_lines > 0 || converted.duplicates > 0 {
            tracing::debug!(url = %self.target.url, bad_lines = converted.bad_lines, duplicates = converted.duplicates, "scrape body had unusable samples");
        }
        self.log_up(true, None);
        ScrapeOutcome {
            samples: converted.samples,
            stale_markers,
            scraped: Some(converted.scraped),
        }
    }

    /// A failed scrape: every cached series goes stale.
    fn failed(&mut self, error: &FetchError, scrape_ms: i64) -> ScrapeOutcome {
        self.metrics.scrapes_failed.fetch_add(1, Ordering::Relaxed);
        self.log_up(false, Some(&error.to_string()));
        ScrapeOutcome {
            samples: Vec::new(),
            stale_markers: self.cache.clear(scrape_ms),
            scraped: None,
        }
    }

    /// `samples` with the scrape's report series after them.
    fn with_report(
        &self,
        mut samples: Vec<ExportSample>,
        scraped: Option<u64>,
        duration: Duration,
        scrape_ms: i64,
    ) -> Vec<ExportSample> {
        let report = ScrapeReport {
            up: scraped.is_some(),
            duration_seconds: duration.as_secs_f64(),
            samples_scraped: scraped.unwrap_or(0),
            samples_post_relabeling: samples.len() as u64,
            series_added: if scraped.is_some() {
                self.cache.added()
            } else {
                0
            },
        };
        samples.extend(self.report_series.samples(report, scrape_ms));
        samples
    }

    /// Shows the scrape to the view and queues its stale markers, then its samples, waiting
    /// for room.
    async fn queue(
        &self,
        stale_markers: Vec<ExportSample>,
        samples: Vec<ExportSample>,
        scrape_ms: i64,
    ) {
        self.metrics
            .stale_markers
            .fetch_add(stale_markers.len() as u64, Ordering::Relaxed);
        if let Some(view) = &self.ctx.view {
            view.scraped(&self.target.url, scrape_ms, &samples);
        }
        let exporter = &self.ctx.exporter;
        exporter
            .enqueue_when_room_on(self.lane_shard, stale_markers)
            .await;
        exporter
            .enqueue_when_room_on(self.lane_shard, samples)
            .await;
    }

    /// Brings the job's `series` gauge in line with the cache.
    fn count_series(&mut self) {
        let now = self.cache.len() as u64;
        let series = &self.metrics.series;
        if now >= self.counted_series {
            series.fetch_add(now - self.counted_series, Ordering::Relaxed);
        } else {
            series.fetch_sub(self.counted_series - now, Ordering::Relaxed);
        }
        self.counted_series = now;
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

    /// Stale markers for every series of the target, report series included, queued without
    /// waiting (the loop ends; a full queue drops its oldest batches instead).
    fn mark_all_stale(&mut self) {
        let marker_ms = self
            .last_scrape_ms
            .map_or_else(now_ms, |last| now_ms().max(last + 1));
        if let Some(view) = &self.ctx.view {
            view.target_gone(&self.target.url);
        }
        let mut markers = self.cache.clear(marker_ms);
        self.count_series();
        if self.last_scrape_ms.is_some() {
            markers.extend(self.report_series.stale_markers(marker_ms));
        }
        tracing::info!(job = %self.target.job, url = %self.target.url, series = markers.len(), "target removed: series marked stale");
        self.metrics
            .stale_markers
            .fetch_add(markers.len() as u64, Ordering::Relaxed);
        self.ctx
            .exporter
            .enqueue_export_on(self.lane_shard, &markers);
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
