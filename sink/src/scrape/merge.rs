//! Which pods the filter currently reports, so that their scraped `istio_*` series can be left
//! out (`scrape.merge.prefer: filter`), and which pods are scrape targets, so that their
//! filter-reported `istio_*` series can be left out at ingest (`prefer: scrape`): a pod never
//! has the same series from two sources.
//!
//! Owns the reported-pod registry (fed by ingest with the pod each validated report names in
//! its body) and the scraped-pod registry. It must not decode reports nor decide what a scrape
//! keeps.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Pods that are scrape targets of some job, whichever replica scrapes them (every replica
/// discovers every target, so this holds on the replica a pod's reports reach).
#[derive(Debug, Default)]
pub struct ScrapedPods {
    by_job: Mutex<HashMap<String, HashSet<PodKey>>>,
}

impl ScrapedPods {
    /// Makes `pods` the pods of `job`'s targets.
    pub fn set_job(&self, job: &str, pods: HashSet<PodKey>) {
        let mut by_job = self.by_job.lock().expect("scraped pods lock");
        by_job.insert(job.to_owned(), pods);
    }

    /// Whether `pod` is a target of any job.
    pub fn contains(&self, pod: &PodKey) -> bool {
        let by_job = self.by_job.lock().expect("scraped pods lock");
        by_job.values().any(|pods| pods.contains(pod))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_count_as_reported_for_the_ttl() {
        let reported = ReportedPods::new(Duration::from_secs(10));
        let pod = ("default".to_owned(), "reviews-1".to_owned());
        let t0 = Instant::now();
        assert!(!reported.is_reported(&pod, t0));
        reported.record(pod.clone(), t0);
        assert!(reported.is_reported(&pod, t0 + Duration::from_secs(9)));
        assert!(!reported.is_reported(&pod, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn scraped_pods_follow_each_jobs_targets() {
        let scraped = ScrapedPods::default();
        let pod = ("default".to_owned(), "reviews-1".to_owned());
        scraped.set_job("a", HashSet::from([pod.clone()]));
        scraped.set_job("b", HashSet::from([pod.clone()]));
        scraped.set_job("a", HashSet::new());
        assert!(scraped.contains(&pod), "still a target of job b");
        scraped.set_job("b", HashSet::new());
        assert!(!scraped.contains(&pod));
    }
}
