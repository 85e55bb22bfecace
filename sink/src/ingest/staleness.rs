//! Per-reporter series tracking: report ordering and stale markers.
//!
//! Owns three rules: a report not newer than the last accepted one of the same proxy lifetime
//! (`proxy_start_ms`) is refused as out of order; a series present in a pod's previous report
//! and absent now gets a stale marker; a pod silent for `stale_after_intervals` × its report
//! interval gets stale markers for all its series and is forgotten. A new `proxy_start_ms`
//! (restart) is a new lifetime: absent old series go stale. It produces samples only; sending
//! them is the exporter's job.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::floor::ReporterKey;
use meshtap_remotewrite::series::{stale_nan, Sample, SeriesId};

/// Report interval assumed for a pod that did not announce one.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

struct PodState {
    proxy_start_ms: i64,
    last_timestamp_ms: i64,
    interval: Duration,
    last_seen: Instant,
    series: HashSet<SeriesId>,
}

/// The order facts of one report.
#[derive(Clone, Copy, Debug)]
pub struct ReportClock {
    pub proxy_start_ms: i64,
    pub timestamp_ms: i64,
    pub interval_ms: u32,
}

/// Result of offering a report to the tracker.
#[derive(Debug)]
pub enum Admission {
    /// Accepted; these stale markers must be sent with the report's samples.
    Accepted { stale_markers: Vec<Sample> },
    /// Not newer than what was already accepted for this proxy lifetime; dropped.
    OutOfOrder { last_timestamp_ms: i64 },
}

/// Stale markers of one reporter that went silent.
#[derive(Debug)]
pub struct SilentReporter {
    pub reporter: ReporterKey,
    pub stale_markers: Vec<Sample>,
}

/// Series last reported per pod.
pub struct StalenessTracker {
    pods: HashMap<ReporterKey, PodState>,
    stale_after_intervals: u32,
}

fn markers(series: impl Iterator<Item = SeriesId>, timestamp_ms: i64) -> Vec<Sample> {
    series
        .map(|series| Sample {
            series,
            value: stale_nan(),
            timestamp_ms,
        })
        .collect()
}

impl StalenessTracker {
    pub fn new(stale_after_intervals: u32) -> StalenessTracker {
        StalenessTracker {
            pods: HashMap::new(),
            stale_after_intervals,
        }
    }

    /// Pods currently tracked.
    pub fn active_pods(&self) -> usize {
        self.pods.len()
    }

    /// Offers a report's samples; on acceptance the pod's series set becomes `samples`.
    pub fn admit(
        &mut self,
        pod: ReporterKey,
        clock: ReportClock,
        samples: &[Sample],
        now: Instant,
    ) -> Admission {
        let interval = if clock.interval_ms == 0 {
            DEFAULT_INTERVAL
        } else {
            Duration::from_millis(u64::from(clock.interval_ms))
        };
        let current: HashSet<SeriesId> = samples.iter().map(|s| s.series.clone()).collect();
        match self.pods.get_mut(&pod) {
            None => {
                self.pods.insert(
                    pod,
                    PodState {
                        proxy_start_ms: clock.proxy_start_ms,
                        last_timestamp_ms: clock.timestamp_ms,
                        interval,
                        last_seen: now,
                        series: current,
                    },
                );
                Admission::Accepted {
                    stale_markers: Vec::new(),
                }
            }
            Some(state) => {
                let same_lifetime = clock.proxy_start_ms == state.proxy_start_ms;
                let older_lifetime = clock.proxy_start_ms < state.proxy_start_ms;
                if older_lifetime
                    || (same_lifetime && clock.timestamp_ms <= state.last_timestamp_ms)
                {
                    return Admission::OutOfOrder {
                        last_timestamp_ms: state.last_timestamp_ms,
                    };
                }
                // A marker must not be older than the series' last sample, even across a restart
                // whose clock is behind.
                let marker_ts = clock.timestamp_ms.max(state.last_timestamp_ms + 1);
                let gone = state
                    .series
                    .iter()
                    .filter(|s| !current.contains(*s))
                    .cloned();
                let stale_markers = markers(gone, marker_ts);
                state.proxy_start_ms = clock.proxy_start_ms;
                state.last_timestamp_ms = marker_ts;
                state.interval = interval;
                state.last_seen = now;
                state.series = current;
                Admission::Accepted { stale_markers }
            }
        }
    }

    /// Forgets pods silent for `stale_after_intervals` report intervals, returning stale markers
    /// for all their series timestamped `now_ms` (or just after their last sample).
    pub fn sweep(&mut self, now: Instant, now_ms: i64) -> Vec<SilentReporter> {
        let limit = self.stale_after_intervals;
        let silent: Vec<ReporterKey> = self
            .pods
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= s.interval * limit)
            .map(|(k, _)| k.clone())
            .collect();
        silent
            .into_iter()
            .filter_map(|pod| {
                let state = self.pods.remove(&pod)?;
                let ts = now_ms.max(state.last_timestamp_ms + 1);
                Some(SilentReporter {
                    reporter: pod,
                    stale_markers: markers(state.series.into_iter(), ts),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_remotewrite::series::{is_stale_marker, SeriesLabels};
    use std::sync::Arc;

    fn sample(name: &str, ts: i64) -> Sample {
        Sample {
            series: SeriesId {
                name: Arc::from(name),
                labels: Arc::new(SeriesLabels::from_sorted(vec![])),
                le: None,
            },
            value: 1.0,
            timestamp_ms: ts,
        }
    }

    fn clock(start: i64, ts: i64) -> ReportClock {
        ReportClock {
            proxy_start_ms: start,
            timestamp_ms: ts,
            interval_ms: 1000,
        }
    }

    fn pod() -> ReporterKey {
        ReporterKey {
            pod: crate::floor::PodKey::new("ns", "p"),
            channel: String::new(),
        }
    }

    #[test]
    fn absent_series_go_stale_and_old_reports_are_refused() {
        let mut t = StalenessTracker::new(3);
        let now = Instant::now();
        let first = [sample("a", 10), sample("b", 10)];
        assert!(matches!(
            t.admit(pod(), clock(1, 10), &first, now),
            Admission::Accepted { stale_markers } if stale_markers.is_empty()
        ));
        assert!(matches!(
            t.admit(pod(), clock(1, 10), &first, now),
            Admission::OutOfOrder {
                last_timestamp_ms: 10
            }
        ));
        let Admission::Accepted { stale_markers } =
            t.admit(pod(), clock(1, 20), &[sample("a", 20)], now)
        else {
            panic!("newer report refused");
        };
        assert_eq!(stale_markers.len(), 1);
        assert_eq!(&*stale_markers[0].series.name, "b");
        assert_eq!(stale_markers[0].timestamp_ms, 20);
        assert!(is_stale_marker(stale_markers[0].value));
        // A late report of the previous lifetime after a restart is refused.
        let Admission::Accepted { stale_markers } =
            t.admit(pod(), clock(2, 15), &[sample("c", 15)], now)
        else {
            panic!("restart refused");
        };
        assert_eq!(stale_markers.len(), 1);
        assert_eq!(
            stale_markers[0].timestamp_ms, 21,
            "marker after the series' last sample"
        );
        assert!(matches!(
            t.admit(pod(), clock(1, 30), &[sample("a", 30)], now),
            Admission::OutOfOrder { .. }
        ));
    }

    #[test]
    fn silent_pods_are_swept_after_the_configured_intervals() {
        let mut t = StalenessTracker::new(3);
        let start = Instant::now();
        t.admit(
            pod(),
            clock(1, 10),
            &[sample("a", 10), sample("b", 10)],
            start,
        );
        assert!(t
            .sweep(start + Duration::from_millis(2999), 5000)
            .is_empty());
        let swept = t.sweep(start + Duration::from_millis(3000), 5000);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].stale_markers.len(), 2);
        assert!(swept[0]
            .stale_markers
            .iter()
            .all(|m| m.timestamp_ms == 5000));
        assert_eq!(t.active_pods(), 0);
    }
}
