//! The merge rule between the filter's reports and scraped `istio_*` series: for a pod that
//! both reports and is a scrape target, `scrape.merge.prefer` says which source keeps its
//! filter families ([`is_filter_family`]), so a pod never has the same series from two sources.
//!
//! Owns the rule ([`SourceMerge`]) and the two registries it reads: the pods the filter
//! reported within `report_ttl` (fed by ingest with the pod each validated report names in its
//! body) and the pods that are scrape targets (fed by the scrape stage per job). It must not
//! decode reports nor convert scrapes; ingest and the scrape loop ask it what to keep.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::{MergeConfig, Prefer};
use crate::floor::PodKey;

/// Whether a family is one of Istio's standard metrics, which the filter produces
/// (`istio_requests_total`, `istio_request_duration_milliseconds_*`, `istio_tcp_*`, ...), as
/// opposed to istio-agent's own `istio_agent_*` and `istio_build`.
pub fn is_filter_family(name: &str) -> bool {
    name.starts_with("istio_") && !name.starts_with("istio_agent_") && name != "istio_build"
}

/// `scrape.merge:` applied: which source keeps a pod's filter families.
#[derive(Debug)]
pub struct SourceMerge {
    prefer: Prefer,
    reported: ReportedPods,
    scraped: ScrapedPods,
}

impl SourceMerge {
    pub fn new(config: &MergeConfig) -> SourceMerge {
        SourceMerge {
            prefer: config.prefer,
            reported: ReportedPods::new(config.report_ttl.get()),
            scraped: ScrapedPods::default(),
        }
    }

    /// Notes a validated report of `pod` (the pod its body names) at `now`, and answers whether
    /// that report keeps its filter families: not with `prefer: scrape` when `pod` is a scrape
    /// target (its series already exported then get stale markers like any vanished series).
    pub fn note_report(&self, pod: &PodKey, now: Instant) -> bool {
        self.reported.record(pod.clone(), now);
        !(self.prefer == Prefer::Scrape && self.scraped.contains(pod))
    }

    /// Whether a scrape of a target of `pod` keeps its filter families: not with
    /// `prefer: filter` when the filter reported `pod` within `report_ttl` before `now`.
    pub fn scrape_keeps_filter_families(&self, pod: Option<&PodKey>, now: Instant) -> bool {
        !(self.prefer == Prefer::Filter && pod.is_some_and(|pod| self.is_reported(pod, now)))
    }

    /// Whether `pod` had an accepted report within `report_ttl` before `now`.
    pub fn is_reported(&self, pod: &PodKey, now: Instant) -> bool {
        self.reported.is_reported(pod, now)
    }

    /// Makes `pods` the pods of `job`'s targets.
    pub fn set_job_pods(&self, job: &str, pods: HashSet<PodKey>) {
        self.scraped.set_job(job, pods);
    }
}

/// Pods with an accepted report within the last `ttl`.
#[derive(Debug)]
struct ReportedPods {
    last_report: Mutex<HashMap<PodKey, Instant>>,
    ttl: Duration,
}

impl ReportedPods {
    fn new(ttl: Duration) -> ReportedPods {
        ReportedPods {
            last_report: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Notes an accepted report of `pod` at `now`; entries older than the TTL are forgotten.
    fn record(&self, pod: PodKey, now: Instant) {
        let mut pods = self.last_report.lock().expect("reported pods lock");
        pods.insert(pod, now);
        let ttl = self.ttl;
        if pods.len() > 64 {
            pods.retain(|_, at| now.saturating_duration_since(*at) < ttl);
        }
    }

    /// Whether `pod` had an accepted report within the TTL before `now`.
    fn is_reported(&self, pod: &PodKey, now: Instant) -> bool {
        let pods = self.last_report.lock().expect("reported pods lock");
        pods.get(pod)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }
}

/// Pods that are scrape targets of some job, whichever replica scrapes them (every replica
/// discovers every target, so this holds on the replica a pod's reports reach).
#[derive(Debug, Default)]
struct ScrapedPods {
    by_job: Mutex<HashMap<String, HashSet<PodKey>>>,
}

impl ScrapedPods {
    /// Makes `pods` the pods of `job`'s targets.
    fn set_job(&self, job: &str, pods: HashSet<PodKey>) {
        let mut by_job = self.by_job.lock().expect("scraped pods lock");
        by_job.insert(job.to_owned(), pods);
    }

    /// Whether `pod` is a target of any job.
    fn contains(&self, pod: &PodKey) -> bool {
        let by_job = self.by_job.lock().expect("scraped pods lock");
        by_job.values().any(|pods| pods.contains(pod))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::HumanDuration;

    fn merge(prefer: Prefer) -> SourceMerge {
        SourceMerge::new(&MergeConfig {
            prefer,
            report_ttl: HumanDuration::from_secs(10),
        })
    }

    #[test]
    fn each_preference_leaves_the_filter_families_to_one_source() {
        let pod = PodKey::new("default", "reviews-1");
        let other = PodKey::new("default", "ratings-1");
        let t0 = Instant::now();
        for prefer in [Prefer::Filter, Prefer::Scrape, Prefer::Both] {
            let m = merge(prefer);
            m.set_job_pods("istio", HashSet::from([pod.clone()]));
            assert!(m.scrape_keeps_filter_families(Some(&pod), t0), "{prefer:?}");
            let report_kept = m.note_report(&pod, t0);
            assert_eq!(report_kept, prefer != Prefer::Scrape, "{prefer:?}");
            assert!(m.note_report(&other, t0), "{prefer:?}: not a target");
            let scrape_kept = m.scrape_keeps_filter_families(Some(&pod), t0);
            assert_eq!(scrape_kept, prefer != Prefer::Filter, "{prefer:?}");
            assert!(
                m.scrape_keeps_filter_families(None, t0),
                "{prefer:?}: no pod"
            );
            let later = t0 + Duration::from_secs(10);
            assert!(
                m.scrape_keeps_filter_families(Some(&pod), later),
                "{prefer:?}: ttl"
            );
        }
    }

    #[test]
    fn filter_families_are_istios_standard_metrics_only() {
        assert!(is_filter_family("istio_request_bytes"));
        assert!(!is_filter_family("istio_agent_pilot_xds"));
        assert!(!is_filter_family("istio_build"));
        assert!(!is_filter_family("envoy_server_live"));
    }

    #[test]
    fn pods_count_as_reported_for_the_ttl() {
        let reported = ReportedPods::new(Duration::from_secs(10));
        let pod = PodKey::new("default", "reviews-1");
        let t0 = Instant::now();
        assert!(!reported.is_reported(&pod, t0));
        reported.record(pod.clone(), t0);
        assert!(reported.is_reported(&pod, t0 + Duration::from_secs(9)));
        assert!(!reported.is_reported(&pod, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn scraped_pods_follow_each_jobs_targets() {
        let scraped = ScrapedPods::default();
        let pod = PodKey::new("default", "reviews-1");
        scraped.set_job("a", HashSet::from([pod.clone()]));
        scraped.set_job("b", HashSet::from([pod.clone()]));
        scraped.set_job("a", HashSet::new());
        assert!(scraped.contains(&pod), "still a target of job b");
        scraped.set_job("b", HashSet::new());
        assert!(!scraped.contains(&pod));
    }
}
