//! Assembles and runs the sink: the stages, the HTTP listeners and their routes, the staleness
//! sweeper, and the orderly shutdown (stop accepting, flush queues within the deadline).
//!
//! Owns process-level wiring and lifecycle only; every behaviour lives in its stage module.
//! [`reload`] serves reload requests (SIGHUP, `POST /-/reload`, the file watch).

mod reload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::SinkConfig;
use crate::export::loki::LokiExporter;
use crate::export::remote_write::RemoteWriteExporter;
use crate::export::EndpointError;
use crate::export::ShutdownSummary;
use crate::floor::clock::now_ms;
use crate::ingest::auth::TokenCheck;
use crate::ingest::handler::{post_report, ReportEndpoint};
use crate::ingest::identity::IdentityCheck;
use crate::ingest::Ingestor;
use crate::logs::{LogTailer, PositionsError};
use crate::ops::health::{self, OpsState};
use crate::ops::metrics::SinkMetrics;
use crate::reload::{ReloadMetrics, ReloadRequest, ReloadTrigger};
use crate::scrape::{ScrapeStage, ScrapeStartError};
use crate::serve::{HttpServer, ListenError};
use crate::spool::Spool;
use crate::view::{LiveView, ViewTap};

/// How often silent pods are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Scrape(#[from] ScrapeStartError),
    #[error("log_files: {0}")]
    Positions(PositionsError),
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// A started sink.
pub struct RunningSink {
    local_addr: SocketAddr,
    ops_addr: Option<SocketAddr>,
    ops: Arc<OpsState>,
    exporter: Arc<RemoteWriteExporter>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    logs: Arc<LokiExporter>,
    tailer: Option<JoinHandle<()>>,
    scrape: Option<Arc<ScrapeStage>>,
    shutdown_timeout: Duration,
    reload: ReloadTrigger,
    reloader: JoinHandle<()>,
    /// Held while the sink runs: its lock keeps a second process off the same spool, and its
    /// fsync scheduler runs until it is dropped.
    _spool: Option<Arc<Spool>>,
}

/// The stages a sink runs, started before its listeners are bound.
struct Stages {
    spool: Option<Arc<Spool>>,
    exporter: Arc<RemoteWriteExporter>,
    view: Option<Arc<LiveView>>,
    logs: Arc<LokiExporter>,
    tailer: Option<LogTailer>,
    scrape: Option<Arc<ScrapeStage>>,
}

impl Stages {
    /// Opens the spool, starts the remote-write and Loki exporters, the view, the log tailer
    /// and the scrape stage, registering their self-metrics with `metrics`.
    fn start(config: &SinkConfig, metrics: &Arc<SinkMetrics>) -> Result<Stages, StartError> {
        let spool = config
            .spool
            .as_ref()
            .map(Spool::open)
            .transpose()
            .map_err(EndpointError::from)?
            .map(Arc::new);
        if let Some(spool) = &spool {
            metrics.add_section(spool.sync().clone());
        }
        let exporter = Arc::new(RemoteWriteExporter::start(
            &config.remote_write,
            spool.as_deref(),
            metrics,
        )?);
        if config.remote_write.is_empty() {
            tracing::warn!("no remote_write endpoint configured: samples are not exported, the /v1/summary view is the only output");
        }
        let view = config
            .view
            .enabled
            .then(|| Arc::new(LiveView::new(&config.view, metrics.clone())));
        let tap = view.clone().map(ViewTap::new);
        let logs = Arc::new(LokiExporter::start(
            &config.logs,
            &config.ingest.job,
            spool.as_deref(),
            metrics,
        )?);
        let tailer = match &config.log_files {
            Some(files) => Some(
                LogTailer::new(files, &config.ingest.job, logs.endpoints(), metrics)
                    .map_err(StartError::Positions)?
                    .with_view(tap.clone()),
            ),
            None => None,
        };
        let scrape = match &config.scrape {
            Some(scrape) => Some(Arc::new(ScrapeStage::start(
                scrape,
                exporter.clone(),
                metrics,
                tap.clone(),
            )?)),
            None => None,
        };
        Ok(Stages {
            spool,
            exporter,
            view,
            logs,
            tailer,
            scrape,
        })
    }

    /// Registers the reload metrics and starts the task that serves reload `requests`,
    /// re-reading `path` (when the config came from a file) into the running stages.
    fn spawn_reloader(
        &self,
        config: &SinkConfig,
        path: Option<PathBuf>,
        metrics: &Arc<SinkMetrics>,
        requests: mpsc::Receiver<ReloadRequest>,
    ) -> JoinHandle<()> {
        let reload_metrics = Arc::new(ReloadMetrics::new(now_ms()));
        metrics.add_section(reload_metrics.clone());
        reload::Reloader {
            path,
            running: config.clone(),
            exporter: self.exporter.clone(),
            scrape: self.scrape.clone(),
            spool: self.spool.clone(),
            sink_metrics: metrics.clone(),
            metrics: reload_metrics,
        }
        .spawn(requests)
    }

    /// The `POST /v1/reports` handler's state: the token and identity checks and the ingestor
    /// that hands accepted reports to the stages.
    fn report_endpoint(
        &self,
        config: &SinkConfig,
        metrics: &Arc<SinkMetrics>,
    ) -> (Arc<ReportEndpoint>, Arc<Ingestor>) {
        let tokens = TokenCheck::new(&config.ingest.tokens);
        if tokens.is_open() {
            tracing::warn!("ingest.tokens is empty: reports are accepted without authentication");
        }
        let mut ingestor = Ingestor::new(
            &config.ingest.job,
            config.ingest.stale_after_intervals,
            self.exporter.clone(),
            self.view.clone().map(ViewTap::new),
            metrics.clone(),
        )
        .with_access_logs(self.logs.clone());
        if let Some(scrape) = &self.scrape {
            ingestor = ingestor.with_source_merge(scrape.source_merge());
        }
        let ingestor = Arc::new(ingestor);
        let reports = Arc::new(ReportEndpoint {
            tokens,
            identity: IdentityCheck::new(config.ingest.verify_identity),
            max_body_bytes: config.ingest.max_body_bytes,
            max_decoded_bytes: config.ingest.max_decoded_bytes,
            ingestor: ingestor.clone(),
            metrics: metrics.clone(),
        });
        (reports, ingestor)
    }
}

/// The main listener's routes (reports, the ops routes, and the live view when enabled) and
/// the ops routes alone (for `serve.ops_listen`). `POST /-/reload` (with `reload.http`) is on
/// the ops listener when there is one, else on the main one.
fn routes(
    reports: Arc<ReportEndpoint>,
    ops: &Arc<OpsState>,
    view: Option<Arc<LiveView>>,
    (config, reload): (&SinkConfig, &ReloadTrigger),
) -> (Router, Router) {
    let report_route = post(post_report).with_state(reports);
    let mut ops_app = Router::new()
        .route("/metrics", get(health::metrics).with_state(ops.clone()))
        .route("/readyz", get(health::readyz).with_state(ops.clone()))
        .route("/healthz", get(health::healthz));
    let mut app = Router::new()
        .route(meshtap_report::REPORT_PATH, report_route)
        .merge(ops_app.clone());
    if let Some(view) = view {
        app = app.merge(crate::view::http::routes(view));
    }
    if config.reload.http {
        let route = crate::reload::http::route(reload.clone(), config.reload.token.clone());
        match config.serve.ops_listen {
            Some(_) => ops_app = ops_app.merge(route),
            None => app = app.merge(route),
        }
    }
    (app, ops_app)
}

/// Asks for a reload whenever the config file at `path` changes (`reload.watch`), until
/// `stop` turns true.
fn spawn_config_watch(
    path: PathBuf,
    config: &SinkConfig,
    reload: &ReloadTrigger,
    stop: &watch::Receiver<bool>,
) {
    tokio::spawn(crate::reload::watch::run_watch(
        config.reload.watch_interval.get(),
        move || reload::config_fingerprint(&path),
        reload.clone(),
        stop.clone(),
    ));
}

/// Sweeps silent reporters every [`SWEEP_EVERY`] until `stop` turns true.
fn spawn_sweeper(ingestor: Arc<Ingestor>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => ingestor.sweep(Instant::now(), now_ms()),
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    })
}

impl RunningSink {
    /// Starts every stage and binds the listener; a reload has no file to re-read (use
    /// [`RunningSink::start_from_file`]).
    pub async fn start(config: &SinkConfig) -> Result<RunningSink, StartError> {
        RunningSink::start_with(config, None).await
    }

    /// Starts every stage with `config`, loaded from `path`, which a reload reads again.
    pub async fn start_from_file(
        path: &Path,
        config: &SinkConfig,
    ) -> Result<RunningSink, StartError> {
        RunningSink::start_with(config, Some(path.to_path_buf())).await
    }

    async fn start_with(
        config: &SinkConfig,
        path: Option<PathBuf>,
    ) -> Result<RunningSink, StartError> {
        let metrics = Arc::new(SinkMetrics::default());
        let stages = Stages::start(config, &metrics)?;
        let (reports, ingestor) = stages.report_endpoint(config, &metrics);
        let (reload, requests) = ReloadTrigger::channel();
        let reloader = stages.spawn_reloader(config, path.clone(), &metrics, requests);
        let ops = Arc::new(OpsState {
            metrics,
            ready: Default::default(),
        });
        let (app, ops_app) = routes(reports, &ops, stages.view.clone(), (config, &reload));
        let http =
            HttpServer::bind(config.listen, &config.serve, app, ops_app, &ops.metrics).await?;
        let (local_addr, ops_addr) = (http.local_addr(), http.ops_addr());
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(http.run(stop_rx.clone()));
        let Stages {
            spool,
            exporter,
            logs,
            tailer,
            scrape,
            view,
        } = stages;
        let tailer = tailer.map(|tailer| tokio::spawn(tailer.run(stop_rx.clone())));
        if let Some(view) = view {
            tokio::spawn(view.run_trends(stop_rx.clone()));
        }
        if let (Some(path), true) = (path, config.reload.watch) {
            spawn_config_watch(path, config, &reload, &stop_rx);
        }
        let sweeper = spawn_sweeper(ingestor, stop_rx);
        tracing::info!(listen = %local_addr, ops_listen = ?ops_addr, endpoints = config.remote_write.len(), "meshtap-sink ready");
        ops.ready.store(true, Ordering::Relaxed);
        Ok(RunningSink {
            local_addr,
            ops_addr,
            ops,
            exporter,
            stop,
            server,
            sweeper,
            logs,
            tailer,
            scrape,
            shutdown_timeout: config.shutdown_timeout.get(),
            reload,
            reloader,
            _spool: spool,
        })
    }

    /// The bound listener address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound `serve.ops_listen` address, when configured.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    pub fn metrics(&self) -> &Arc<SinkMetrics> {
        &self.ops.metrics
    }

    /// Asks for a reload of the config file (as SIGHUP does); see [`crate::reload`].
    pub fn reload_trigger(&self) -> &ReloadTrigger {
        &self.reload
    }

    /// The scrape stage, when `scrape:` is configured.
    pub fn scrape(&self) -> Option<&Arc<ScrapeStage>> {
        self.scrape.as_ref()
    }

    /// Stops accepting reports, then flushes every endpoint for at most `shutdown_timeout`;
    /// logs and returns what had to be dropped.
    pub async fn shutdown(self) -> ShutdownSummary {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.ops.ready.store(false, Ordering::Relaxed);
        self.stop.send_replace(true);
        // Between requests (a reload runs without awaiting), so none is cut in half.
        self.reloader.abort();
        let server = self.server.abort_handle();
        if tokio::time::timeout(self.shutdown_timeout, self.server)
            .await
            .is_err()
        {
            tracing::warn!("open connections did not finish before the shutdown deadline");
            server.abort();
        }
        let _ = self.sweeper.await;
        if let Some(scrape) = &self.scrape {
            scrape.stop().await;
        }
        if let Some(tailer) = self.tailer {
            let abort = tailer.abort_handle();
            let remaining = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(remaining, tailer).await.is_err() {
                tracing::warn!("file tailer still pushing at the shutdown deadline: its unsaved lines are sent again after a restart");
                abort.abort();
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (mut summary, log_entries_dropped) = tokio::join!(
            self.exporter.shutdown(remaining),
            self.logs.shutdown(remaining)
        );
        for (endpoint, dropped) in &log_entries_dropped {
            if *dropped > 0 {
                tracing::warn!(%endpoint, dropped, "log entries dropped at shutdown (flush deadline passed)");
            }
        }
        summary.log_entries_dropped = log_entries_dropped;
        for (endpoint, kept) in &summary.kept {
            if *kept > 0 {
                tracing::info!(%endpoint, kept, "unsent samples kept in the spool for the next start");
            }
        }
        for (endpoint, dropped) in &summary.dropped {
            if *dropped > 0 {
                tracing::warn!(%endpoint, dropped, "samples dropped at shutdown (flush deadline passed)");
            } else {
                tracing::info!(%endpoint, "queue flushed");
            }
        }
        summary
    }
}
