//! The time limit on a request body: a body not received whole within `serve.body_read_timeout`
//! of its request head ends in a [`BodyReadTimeout`] error, which the handler reading it
//! answers with 408.
//!
//! Owns the body wrapper and how to recognise its error; it must not answer requests itself.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::HttpBody;
use axum::BoxError;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::metrics::{ListenerMetrics, TimeoutPhase};
use crate::floor::HumanDuration;

/// A request body did not arrive whole in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in full within {limit} (serve.body_read_timeout)")]
pub struct BodyReadTimeout {
    limit: HumanDuration,
}

/// Whether `error`, or an error it wraps, is a [`BodyReadTimeout`].
pub fn is_body_read_timeout(error: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails once its deadline passes.
pub struct TimedBody<B> {
    inner: B,
    deadline: Instant,
    limit: Duration,
    /// Started the first time the body has nothing to give.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timeout was counted.
    timed_out: bool,
    metrics: Arc<ListenerMetrics>,
}

impl<B> TimedBody<B> {
    /// `inner` must arrive within `limit` from now.
    pub fn new(inner: B, limit: Duration, metrics: Arc<ListenerMetrics>) -> TimedBody<B> {
        TimedBody {
            inner,
            deadline: Instant::now() + limit,
            limit,
            timer: None,
            timed_out: false,
            metrics,
        }
    }
}

impl<B> HttpBody for TimedBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        if !this.timed_out {
            this.timed_out = true;
            this.metrics.count_timeout(TimeoutPhase::Body);
        }
        Poll::Ready(Some(Err(Box::new(BodyReadTimeout {
            limit: HumanDuration(this.limit),
        }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use futures_util::stream;

    fn metrics() -> Arc<ListenerMetrics> {
        Arc::new(ListenerMetrics::new("listen", 1))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_its_deadline_and_is_counted_once() {
        let metrics = metrics();
        let stalled = Body::from_stream(stream::pending::<Result<Bytes, std::io::Error>>());
        let body = TimedBody::new(stalled, Duration::from_secs(30), metrics.clone());
        let started = Instant::now();
        let error = axum::body::to_bytes(Body::new(body), 1024)
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(is_body_read_timeout(&error), "{error:?}");
        assert_eq!(
            error.to_string(),
            "request body not received in full within 30s (serve.body_read_timeout)"
        );
        assert_eq!(metrics.timeouts(TimeoutPhase::Body), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_is_untouched() {
        let metrics = metrics();
        let body = TimedBody::new(
            Body::from("report"),
            Duration::from_secs(1),
            metrics.clone(),
        );
        let bytes = axum::body::to_bytes(Body::new(body), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"report");
        assert_eq!(metrics.timeouts(TimeoutPhase::Body), 0);
    }

    #[test]
    fn other_body_errors_are_not_timeouts() {
        let error = axum::Error::new(std::io::Error::other("reset"));
        assert!(!is_body_read_timeout(&error));
    }
}
