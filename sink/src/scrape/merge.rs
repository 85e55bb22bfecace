//! Which pods the filter currently reports, so that their scraped `istio_*` series can be left
//! out (`scrape.merge.prefer: filter`) and a pod never has the same series from two sources.
//!
//! Owns the reported-pod registry and the middleware that feeds it from accepted
//! `POST /v1/reports` (answer 204, pod named by the `x-meshtap-pod` header the filter sends).
//! It must not decode reports nor decide what a scrape keeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::staleness::PodKey;

/// Pods with an accepted report within the last `ttl`.
#[derive(Debug)]
pub struct ReportedPods {
    last_report: Mutex<HashMap<PodKey, Instant>>,
    ttl: Duration,
}

impl ReportedPods {
    pub fn new(ttl: Duration) -> ReportedPods {
        ReportedPods {
            last_report: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Notes an accepted report of `pod` at `now`; entries older than the TTL are forgotten.
    pub fn record(&self, pod: PodKey, now: Instant) {
        let mut pods = self.last_report.lock().expect("reported pods lock");
        pods.insert(pod, now);
        let ttl = self.ttl;
        if pods.len() > 64 {
            pods.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        }
    }

    /// Whether `pod` had an accepted report within the TTL before `now`.
    pub fn is_reported(&self, pod: &PodKey, now: Instant) -> bool {
        let pods = self.last_report.lock().expect("reported pods lock");
        pods.get(pod)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }
}

/// The pod named by an `x-meshtap-pod: <namespace>/<pod>` header value.
pub fn pod_from_header(value: &str) -> Option<PodKey> {
    let (namespace, pod) = value.split_once('/')?;
    (!namespace.is_empty() && !pod.is_empty()).then(|| (namespace.to_owned(), pod.to_owned()))
}

/// Middleware on the report route: records the pod of every report answered 204.
pub async fn record_reported_pod(
    State(reported): State<Arc<ReportedPods>>,
    request: Request,
    next: Next,
) -> Response {
    let pod = request
        .headers()
        .get(meshtap_report::POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(pod_from_header);
    let response = next.run(request).await;
    if response.status() == StatusCode::NO_CONTENT {
        if let Some(pod) = pod {
            reported.record(pod, Instant::now());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_count_as_reported_for_the_ttl() {
        let reported = ReportedPods::new(Duration::from_secs(10));
        let pod = pod_from_header("default/reviews-1").unwrap();
        let t0 = Instant::now();
        assert!(!reported.is_reported(&pod, t0));
        reported.record(pod.clone(), t0);
        assert!(reported.is_reported(&pod, t0 + Duration::from_secs(9)));
        assert!(!reported.is_reported(&pod, t0 + Duration::from_secs(10)));
        assert_eq!(pod_from_header("nopod"), None);
        assert_eq!(pod_from_header("/x"), None);
    }
}
