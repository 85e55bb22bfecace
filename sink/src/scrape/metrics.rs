//! The scrape stage's self-metrics on `/metrics`: per job, its targets (all of them, and those
//! this replica scrapes), scrapes by result, scrape duration, samples, bad lines and stale
//! markers; with sharding, the membership (state, size, updates, errors, last update).
//!
//! Owns the `meshtap_sink_scrape_*` names and their rendering; the loops and the membership
//! watcher only bump the atomics. It must not scrape or watch anything.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sharding::Membership;
use crate::floor::clock::now_ms;
use crate::ops::metrics::{escape, header, MetricsSection};

/// Upper bounds (seconds) of the scrape-duration histogram.
const DURATION_BOUNDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters and gauges of one job.
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Targets of the job (static or discovered), whichever replica scrapes them.
    pub targets: AtomicU64,
    /// Targets of the job this replica scrapes.
    pub targets_owned: AtomicU64,
    pub scrapes_succeeded: AtomicU64,
    pub scrapes_failed: AtomicU64,
    /// Samples in successfully scraped bodies.
    pub samples: AtomicU64,
    /// Exposition lines the parser skipped.
    pub bad_lines: AtomicU64,
    pub stale_markers: AtomicU64,
    /// Scraped series live in the job's targets' caches (their latest scrapes' series).
    pub series: AtomicU64,
    /// Per bucket (not cumulative), the last one past the largest bound.
    duration_buckets: [AtomicU64; DURATION_BOUNDS.len() + 1],
    duration_micros: AtomicU64,
}

impl JobMetrics {
    /// Records one scrape's duration.
    pub fn observe_duration(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BOUNDS.len());
        self.duration_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_micros.fetch_add(
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The sharding membership as last observed.
#[derive(Debug)]
pub struct MembershipMetrics {
    state: AtomicUsize,
    members: AtomicU64,
    updates: AtomicU64,
    errors: AtomicU64,
    /// Wall clock (ms) of the last EndpointSlice list or change, 0 before any.
    last_update_ms: AtomicI64,
}

const STATES: [&str; 4] = ["starting", "member", "not_member", "unknown"];

impl Default for MembershipMetrics {
    fn default() -> Self {
        MembershipMetrics {
            state: AtomicUsize::new(0),
            members: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_update_ms: AtomicI64::new(0),
        }
    }
}

impl MembershipMetrics {
    pub fn observe(&self, membership: &Membership) {
        let state = STATES
            .iter()
            .position(|s| *s == membership.state())
            .expect("every membership state is listed");
        self.state.store(state, Ordering::Relaxed);
        self.members
            .store(membership.size() as u64, Ordering::Relaxed);
    }

    pub fn count_update(&self) {
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.last_update_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        header(
            out,
            "meshtap_sink_scrape_membership_state",
            "gauge",
            "Sharding state of this replica (1 for the current one): starting scrapes nothing, member its share, not_member nothing, unknown everything.",
        );
        let current = self.state.load(Ordering::Relaxed);
        for (i, state) in STATES.iter().enumerate() {
            let _ = writeln!(
                out,
                "meshtap_sink_scrape_membership_state{{state=\"{state}\"}} {}",
                u8::from(i == current)
            );
        }
        let last_update_ms = self.last_update_ms.load(Ordering::Relaxed);
        let scalars = [
            (
                "meshtap_sink_scrape_membership_members",
                "gauge",
                "Ready replicas sharing the scrape targets (0 unless known).",
                self.members.load(Ordering::Relaxed).to_string(),
            ),
            (
                "meshtap_sink_scrape_membership_updates_total",
                "counter",
                "EndpointSlice lists and changes applied.",
                self.updates.load(Ordering::Relaxed).to_string(),
            ),
            (
                "meshtap_sink_scrape_membership_errors_total",
                "counter",
                "Failed EndpointSlice lists or watches (and a missing API client).",
                self.errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "meshtap_sink_scrape_membership_last_update_timestamp_seconds",
                "gauge",
                "When the membership was last listed or changed (0 = never).",
                (last_update_ms as f64 / 1000.0).to_string(),
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// The whole scrape section of `/metrics`.
#[derive(Debug)]
pub struct ScrapeMetrics {
    jobs: Mutex<BTreeMap<String, Arc<JobMetrics>>>,
    /// Present when `scrape.sharding` is configured.
    pub membership: Option<Arc<MembershipMetrics>>,
}

impl ScrapeMetrics {
    /// Metrics with, when `sharded`, a membership block.
    pub fn new(sharded: bool) -> ScrapeMetrics {
        ScrapeMetrics {
            jobs: Mutex::default(),
            membership: sharded.then(Arc::default),
        }
    }

    /// The metrics of `job`, created on first use.
    pub fn job(&self, job: &str) -> Arc<JobMetrics> {
        let mut jobs = self.jobs.lock().expect("scrape metrics lock");
        jobs.entry(job.to_owned()).or_default().clone()
    }
}

type JobFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&JobMetrics) -> u64,
);

impl MetricsSection for ScrapeMetrics {
    fn render(&self, out: &mut String) {
        let jobs = self.jobs.lock().expect("scrape metrics lock");
        let families: [JobFamily; 6] = [
            (
                "meshtap_sink_scrape_targets",
                "gauge",
                "Targets of the job (static or discovered), whichever replica scrapes them.",
                |j| j.targets.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_scrape_targets_owned",
                "gauge",
                "Targets of the job this replica scrapes.",
                |j| j.targets_owned.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_scrape_samples_total",
                "counter",
                "Samples in successfully scraped bodies.",
                |j| j.samples.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_scrape_bad_lines_total",
                "counter",
                "Exposition lines skipped as unparseable.",
                |j| j.bad_lines.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_scrape_series",
                "gauge",
                "Series of the latest scrapes of the job's targets this replica scrapes.",
                |j| j.series.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_scrape_stale_markers_total",
                "counter",
                "Stale markers sent for scraped series.",
                |j| j.stale_markers.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in families {
            header(out, name, kind, help);
            for (job, metrics) in jobs.iter() {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", escape(job), value(metrics));
            }
        }
        let name = "meshtap_sink_scrapes_total";
        header(out, name, "counter", "Scrapes, by result.");
        for (job, metrics) in jobs.iter() {
            for (result, count) in [
                ("success", &metrics.scrapes_succeeded),
                ("failure", &metrics.scrapes_failed),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{job=\"{}\",result=\"{result}\"}} {}",
                    escape(job),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        render_durations(out, &jobs);
        if let Some(membership) = &self.membership {
            membership.render(out);
        }
    }
}

fn render_durations(out: &mut String, jobs: &BTreeMap<String, Arc<JobMetrics>>) {
    let name = "meshtap_sink_scrape_duration_seconds";
    header(out, name, "histogram", "How long scrapes took.");
    for (job, metrics) in jobs {
        let job = escape(job);
        let mut cumulative = 0;
        for (i, count) in metrics.duration_buckets.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = DURATION_BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(
                out,
                "{name}_bucket{{job=\"{job}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let seconds = metrics.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{job=\"{job}\"}} {seconds}");
        let _ = writeln!(out, "{name}_count{{job=\"{job}\"}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_jobs_durations_and_membership() {
        let metrics = ScrapeMetrics::new(true);
        let job = metrics.job("integrations/istio");
        job.targets.store(5, Ordering::Relaxed);
        job.targets_owned.store(2, Ordering::Relaxed);
        job.series.store(4000, Ordering::Relaxed);
        job.scrapes_failed.fetch_add(1, Ordering::Relaxed);
        job.observe_duration(Duration::from_millis(3));
        job.observe_duration(Duration::from_millis(30));
        job.observe_duration(Duration::from_secs(60));
        let membership = metrics.membership.as_ref().unwrap();
        membership.observe(&Membership::Unknown);
        membership.count_error();
        let mut text = String::new();
        metrics.render(&mut text);
        for line in [
            "meshtap_sink_scrape_targets{job=\"integrations/istio\"} 5",
            "meshtap_sink_scrape_targets_owned{job=\"integrations/istio\"} 2",
            "meshtap_sink_scrape_series{job=\"integrations/istio\"} 4000",
            "meshtap_sink_scrapes_total{job=\"integrations/istio\",result=\"failure\"} 1",
            "meshtap_sink_scrapes_total{job=\"integrations/istio\",result=\"success\"} 0",
            "meshtap_sink_scrape_duration_seconds_bucket{job=\"integrations/istio\",le=\"0.005\"} 1",
            "meshtap_sink_scrape_duration_seconds_bucket{job=\"integrations/istio\",le=\"0.05\"} 2",
            "meshtap_sink_scrape_duration_seconds_bucket{job=\"integrations/istio\",le=\"10\"} 2",
            "meshtap_sink_scrape_duration_seconds_bucket{job=\"integrations/istio\",le=\"+Inf\"} 3",
            "meshtap_sink_scrape_duration_seconds_sum{job=\"integrations/istio\"} 60.033",
            "meshtap_sink_scrape_duration_seconds_count{job=\"integrations/istio\"} 3",
            "meshtap_sink_scrape_membership_state{state=\"unknown\"} 1",
            "meshtap_sink_scrape_membership_state{state=\"member\"} 0",
            "meshtap_sink_scrape_membership_errors_total 1",
            "meshtap_sink_scrape_membership_last_update_timestamp_seconds 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The whole section parses with our own text-format parser.
        let parsed = meshtap_textformat::TypedSamples::new(
            meshtap_textformat::Parser::for_content_type(text.as_bytes(), None),
        );
        assert!(parsed.into_iter().all(|s| s.is_ok()));
    }
}
