//! The in-memory live view: recent cumulative values per source (reporting pod or scrape
//! target, ztunnels included), recent access-log lines and trend points, served as the browser page on `/`,
//! its JSON on `/v1/live` and the per-service summary on `/v1/summary`.
//!
//! Owns the view's state and its locking. Other stages reach it only through [`ViewTap`]
//! (what they saw) and it reads the sink's self-metrics; it must never feed anything back
//! into export. Memory is bounded by `view.max_sources`, `max_services`, `max_edges`,
//! `max_log_lines` and `trend_points`.

mod ambient;
mod config;
mod extract;
pub mod http;
mod key_types;
mod keys;
mod label_cache;
mod live;
mod log_ring;
mod pipeline;
mod quantile;
mod render;
mod sample_labels;
mod store;
mod tap;
mod trend;

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

pub use ambient::AmbientPair;
pub use config::ViewConfig;
pub use live::ServiceSummary;
pub use log_ring::{LogFilter, LogLine, LogOrigin};
pub use quantile::histogram_quantile;
pub use render::render_table;
pub use tap::ViewTap;

use self::extract::Values;
use self::label_cache::LabelCache;
use self::live::{ControlPlane, Dropped, Edge, TargetUp, TcpService};
use self::log_ring::LogRing;
use self::pipeline::PipelineHealth;
use self::sample_labels::SampleLabels;
use self::store::{SourceId, SourceStore};
use self::trend::{ServiceTrend, Trends};
use crate::floor::clock::now_ms;
use crate::ops::metrics::SinkMetrics;

/// The summary document of `/v1/summary`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub window_seconds: f64,
    pub services: Vec<ServiceSummary>,
}

/// A service row of the live view with its trend lines.
#[derive(Clone, Debug, Serialize)]
pub struct LiveService {
    #[serde(flatten)]
    pub summary: ServiceSummary,
    pub trend: ServiceTrend,
}

/// The document of `/v1/live`, which the page polls.
#[derive(Clone, Debug, Serialize)]
pub struct LiveDocument {
    pub generated_ms: i64,
    pub window_seconds: f64,
    pub trend_step_seconds: f64,
    pub services: Vec<LiveService>,
    pub edges: Vec<Edge>,
    pub tcp: Vec<TcpService>,
    /// ztunnel's L4 traffic per workload pair (ambient mode).
    pub ambient_l4: Vec<AmbientPair>,
    pub control_plane: ControlPlane,
    pub pushes_trend: Vec<Option<f64>>,
    pub scrape_targets: Vec<TargetUp>,
    pub pipeline: PipelineHealth,
    pub logs: Vec<LogLine>,
    /// Services named by the kept log lines (the log filter's choices).
    pub log_services: Vec<String>,
    pub dropped: Dropped,
    /// Snapshots not kept because `view.max_sources` sources were already tracked.
    pub sources_refused: u64,
}

/// Log lines sent to the page at most.
const LOG_LINES_SHOWN: usize = 200;

struct State {
    store: SourceStore,
    logs: LogRing,
    trends: Trends,
}

/// The live view.
pub struct LiveView {
    config: ViewConfig,
    metrics: Arc<SinkMetrics>,
    state: Mutex<State>,
}

impl LiveView {
    pub fn new(config: &ViewConfig, metrics: Arc<SinkMetrics>) -> LiveView {
        let window_ms = config.window.get().as_millis() as i64;
        LiveView {
            config: config.clone(),
            metrics,
            state: Mutex::new(State {
                store: SourceStore::new(window_ms, config.max_sources),
                logs: LogRing::new(config.max_log_lines),
                trends: Trends::new(config.trend_points),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("view lock")
    }

    /// One scrape of a target: its label sets' keys are kept between scrapes (a target serves
    /// the same series every interval). One lock per scrape.
    fn record_scrape(&self, source: SourceId, timestamp_ms: i64, samples: &[impl SampleLabels]) {
        let read = |keys: &mut _, labels: &mut _| Values::read(samples, keys, labels);
        self.state().store.record(source, 0, timestamp_ms, read);
    }

    /// One report: its series' labels are its own, so their keys are kept for this report only.
    fn record_report(
        &self,
        source: SourceId,
        generation: i64,
        timestamp_ms: i64,
        samples: &[impl SampleLabels],
    ) {
        let read =
            |keys: &mut _, _: &mut _| Values::read(samples, keys, &mut LabelCache::default());
        self.state()
            .store
            .record(source, generation, timestamp_ms, read);
    }

    fn remove(&self, source: &SourceId) {
        self.state().store.remove(source);
    }

    fn push_log(&self, line: LogLine) {
        self.state().logs.push(line);
    }

    /// Rates, error shares and latency quantiles per service over the window.
    pub fn summary(&self) -> Summary {
        let totals = self.state().store.totals();
        Summary {
            window_seconds: self.config.window.get().as_secs_f64(),
            services: live::services(&totals, self.config.max_services).0,
        }
    }

    /// Everything the page shows, log lines as `filter` keeps them.
    pub fn live(&self, filter: &LogFilter) -> LiveDocument {
        let pipeline = PipelineHealth::of(&self.metrics, now_ms());
        let state = self.state();
        let totals = state.store.totals();
        let (services, services_dropped) = live::services(&totals, self.config.max_services);
        let (edges, edges_dropped) = live::edges(&totals, self.config.max_edges);
        let (ambient_l4, pairs_dropped) = ambient::pairs(&totals, self.config.max_edges);
        let services = services
            .into_iter()
            .map(|summary| LiveService {
                trend: state.trends.service(&summary.service),
                summary,
            })
            .collect();
        LiveDocument {
            generated_ms: now_ms(),
            window_seconds: self.config.window.get().as_secs_f64(),
            trend_step_seconds: self.config.trend_step.get().as_secs_f64(),
            services,
            edges,
            tcp: live::tcp(&totals, self.config.max_services),
            ambient_l4,
            control_plane: live::control_plane(&totals),
            pushes_trend: state.trends.pushes(),
            scrape_targets: live::targets_up(&totals),
            pipeline,
            logs: state.logs.newest(filter, LOG_LINES_SHOWN),
            log_services: state.logs.services(),
            dropped: Dropped {
                services: services_dropped,
                edges: edges_dropped,
                ambient_pairs: pairs_dropped,
            },
            sources_refused: state.store.refused_snapshots,
        }
    }

    /// Adds one point to every trend line.
    fn add_trend_point(&self) {
        let mut state = self.state();
        let totals = state.store.totals();
        let services = live::services(&totals, self.config.max_services).0;
        let plane = live::control_plane(&totals);
        let pushes = (!plane.pushes.is_empty()).then(|| plane.pushes.iter().map(|p| p.rate).sum());
        state.trends.add(&services, pushes);
    }

    /// Adds a trend point every `view.trend_step` until `stop` turns true.
    pub async fn run_trends(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.trend_step.get());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.add_trend_point(),
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }
}
