//! HTTP serving: the report listener (`listen`) and the optional operations listener
//! (`serve.ops_listen`), each with a connection limit, and per-connection time limits on request
//! heads, bodies and idle keep-alive, so that slow or silent clients cannot hold the sink.
//!
//! Owns accepting, admitting and timing connections; what a request means is the router's.

mod body;
mod clock;
pub mod config;
mod connection;
pub mod limits;
pub mod metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

pub use body::{is_body_read_timeout, BodyReadTimeout};
pub use config::ServeConfig;
use config::Timeouts;
use limits::{descriptor_limit, ConnectionLimits};
use metrics::{ListenerMetrics, ServeMetrics};

use crate::ops::metrics::SinkMetrics;

/// After a failed `accept` other than a client's aborted connection (such as running out of
/// descriptors), the listener waits this long before accepting again.
const ACCEPT_RETRY_AFTER: Duration = Duration::from_millis(100);

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{key}: cannot listen on {addr}: {error}")]
pub struct ListenError {
    key: &'static str,
    addr: SocketAddr,
    error: io::Error,
}

/// One bound listener with its routes, limit and counters.
struct Listener {
    tcp: TcpListener,
    addr: SocketAddr,
    app: Router,
    limit: usize,
    metrics: Arc<ListenerMetrics>,
}

impl Listener {
    async fn bind(
        key: &'static str,
        addr: SocketAddr,
        app: Router,
        limit: usize,
    ) -> Result<Listener, ListenError> {
        let error = |error| ListenError { key, addr, error };
        let tcp = TcpListener::bind(addr).await.map_err(error)?;
        let addr = tcp.local_addr().map_err(error)?;
        Ok(Listener {
            tcp,
            addr,
            app,
            limit,
            metrics: Arc::new(ListenerMetrics::new(key, limit)),
        })
    }
}

/// The bound listeners, not yet accepting.
pub struct HttpServer {
    report: Listener,
    ops: Option<Listener>,
    timeouts: Timeouts,
}

impl HttpServer {
    /// Binds `listen` for `app` and, when configured, `serve.ops_listen` for `ops_app`, and
    /// registers their counters in `sink_metrics`.
    pub async fn bind(
        listen: SocketAddr,
        config: &ServeConfig,
        app: Router,
        ops_app: Router,
        sink_metrics: &SinkMetrics,
    ) -> Result<HttpServer, ListenError> {
        let descriptors = descriptor_limit();
        let limits = ConnectionLimits::resolve(config, descriptors);
        let report = Listener::bind("listen", listen, app, limits.report).await?;
        let ops = match config.ops_listen {
            Some(addr) => Some(Listener::bind("ops_listen", addr, ops_app, limits.ops).await?),
            None => None,
        };
        tracing::info!(
            max_connections = limits.report,
            ops_max_connections = ops.as_ref().map(|_| limits.ops),
            descriptor_limit = descriptors,
            "HTTP connection limits"
        );
        let listeners = std::iter::once(&report).chain(ops.as_ref());
        sink_metrics.add_section(Arc::new(ServeMetrics(
            listeners.map(|l| l.metrics.clone()).collect(),
        )));
        Ok(HttpServer {
            report,
            ops,
            timeouts: config.timeouts(),
        })
    }

    /// The address reports are posted to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.report.addr
    }

    /// The operations listener's address, when there is one.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(|l| l.addr)
    }

    /// Accepts on every listener until `stop` turns true, then waits for the open connections
    /// to finish their requests.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let report = accept_loop(self.report, self.timeouts, stop.clone());
        match self.ops {
            Some(ops) => {
                tokio::join!(report, accept_loop(ops, self.timeouts, stop));
            }
            None => report.await,
        }
    }
}

/// A served connection's hold on its listener's limit.
struct Admission {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<ListenerMetrics>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.metrics.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(listener: Listener, timeouts: Timeouts, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(listener.limit));
    let metrics = listener.metrics.clone();
    let connection_stop = stop.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok((stream, _)) => {
                    let Some(admission) = admit(&permits, &metrics) else {
                        drop(stream);
                        continue;
                    };
                    let serve = connection::serve(
                        stream,
                        listener.app.clone(),
                        timeouts,
                        metrics.clone(),
                        connection_stop.clone(),
                    );
                    connections.spawn(async move {
                        serve.await;
                        drop(admission);
                    });
                }
                Err(e) => accept_failed(&metrics, e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener.tcp);
    while connections.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Takes a place under the listener's limit, or counts the connection refused.
fn admit(permits: &Arc<Semaphore>, metrics: &Arc<ListenerMetrics>) -> Option<Admission> {
    match permits.clone().try_acquire_owned() {
        Ok(permit) => {
            metrics.accepted.fetch_add(1, Ordering::Relaxed);
            metrics.open.fetch_add(1, Ordering::Relaxed);
            Some(Admission {
                _permit: permit,
                metrics: metrics.clone(),
            })
        }
        Err(_) => {
            metrics.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                listener = metrics.listener,
                "connection refused: at the connection limit"
            );
            None
        }
    }
}

async fn accept_failed(metrics: &ListenerMetrics, error: io::Error) {
    // A client that gave up before being accepted is no failure of the listener.
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(listener = metrics.listener, %error, "accept failed");
    tokio::time::sleep(ACCEPT_RETRY_AFTER).await;
}
