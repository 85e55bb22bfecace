//! One accepted HTTP/1 connection: served by hyper, its phases timed by a [`ConnectionClock`],
//! closed when a phase outlasts its limit, and shut down gracefully when the sink stops.
//!
//! Owns the per-connection plumbing (reads that start a request head, the answer that ends one,
//! the driver loop); routing and handlers are the router's.

use std::convert::Infallible;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::BoxError;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower_service::Service;

use super::body::TimedBody;
use super::clock::ConnectionClock;
use super::config::Timeouts;
use super::metrics::ListenerMetrics;

/// Serves `stream` with `app` until the client leaves, a phase times out, or `stop` turns true
/// (then the request in progress is finished and the connection closed).
pub async fn serve(
    stream: TcpStream,
    app: Router,
    timeouts: Timeouts,
    metrics: Arc<ListenerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let clock = Arc::new(ConnectionClock::new(timeouts));
    let io = TokioIo::new(TimedStream {
        stream,
        clock: clock.clone(),
    });
    let service = {
        let clock = clock.clone();
        let metrics = metrics.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            clock.serving();
            let request = request
                .map(|body| Body::new(TimedBody::new(body, timeouts.body_read, metrics.clone())));
            let answer = app.clone().call(request);
            let clock = clock.clone();
            async move {
                let response = answer.await?;
                clock.answering();
                Ok::<_, Infallible>(response.map(|body| AnswerBody { body, clock }))
            }
        })
    };
    let mut connection = pin!(http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service));
    let mut stopping = false;
    loop {
        let deadline = clock.deadline();
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = clock.deadline_moved() => {}
            () = sleep_until(deadline) => {
                if let Some(phase) = clock.expired() {
                    metrics.count_timeout(phase);
                    tracing::debug!(phase = phase.as_str(), "connection closed: too slow");
                    return;
                }
            }
            () = super::stopped(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<(tokio::time::Instant, impl Sized)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The accepted stream, telling the clock when bytes arrive.
struct TimedStream {
    stream: TcpStream,
    clock: Arc<ConnectionClock>,
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.bytes_received();
        }
        read
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// An answer's body; once hyper has written and dropped it, the connection is idle again.
struct AnswerBody {
    body: Body,
    clock: Arc<ConnectionClock>,
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.clock.answered();
    }
}

impl HttpBody for AnswerBody {
    type Data = <Body as HttpBody>::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, BoxError>>> {
        Pin::new(&mut self.get_mut().body)
            .poll_frame(cx)
            .map(|frame| frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
