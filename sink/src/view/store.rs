//! The recent snapshots of every source (a reporting pod's channel or a scrape target) and
//! the increases over the trailing window summed over sources.
//!
//! Owns the per-source history, its bound (`view.max_sources`) and the counter arithmetic: a
//! source whose generation changed (a proxy restart) or whose counter went down within the
//! window adds no increase for it. It must not decide what is shown (that is
//! [`super::live`]).

use std::collections::VecDeque;

use foldhash::HashMap;

use super::extract::{Buckets, Counter, Gauge, Histogram, Values};
use crate::floor::ReporterKey;

/// Where a snapshot comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceId {
    Reporter(ReporterKey),
    /// A scrape target, by URL.
    Target(String),
}

/// One source's values at one time.
#[derive(Debug)]
pub struct Snapshot {
    pub timestamp_ms: i64,
    /// Counters are comparable only within one generation (the proxy's start time for
    /// reports; scrapes have one generation and rely on counters going down).
    pub generation: i64,
    pub values: Values,
}

/// The increases over the window, summed over sources.
#[derive(Debug, Default)]
pub struct WindowTotals {
    /// Per-second increase.
    pub rates: HashMap<Counter, f64>,
    /// Increase over the window.
    pub increases: HashMap<Counter, f64>,
    /// Latest cumulative value.
    pub totals: HashMap<Counter, f64>,
    /// Sources whose latest snapshot has the counter.
    pub sources: HashMap<Counter, usize>,
    /// Bucket increases (per bucket, not cumulative), only where every source used the same
    /// bounds.
    pub histograms: HashMap<Histogram, Buckets>,
    /// Latest values, summed over sources.
    pub gauges: HashMap<Gauge, f64>,
}

/// Snapshot histories per source.
#[derive(Debug)]
pub struct SourceStore {
    window_ms: i64,
    max_sources: usize,
    sources: HashMap<SourceId, VecDeque<Snapshot>>,
    /// Snapshots of sources over `max_sources`, not kept.
    pub refused_snapshots: u64,
}

impl SourceStore {
    pub fn new(window_ms: i64, max_sources: usize) -> SourceStore {
        SourceStore {
            window_ms,
            max_sources,
            sources: HashMap::default(),
            refused_snapshots: 0,
        }
    }

    /// Adds a snapshot; keeps the newest one at or before the window start as the base.
    pub fn record(&mut self, source: SourceId, snapshot: Snapshot) {
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            self.refused_snapshots += 1;
            return;
        }
        let window_start = snapshot.timestamp_ms - self.window_ms;
        let history = self.sources.entry(source).or_default();
        history.push_back(snapshot);
        while history.len() > 2 && history[1].timestamp_ms <= window_start {
            history.pop_front();
        }
    }

    pub fn remove(&mut self, source: &SourceId) {
        self.sources.remove(source);
    }

    /// The window's increases and the latest values over every source.
    pub fn totals(&self) -> WindowTotals {
        let mut out = WindowTotals::default();
        let mut histogram_bounds_differ = Vec::new();
        for history in self.sources.values() {
            let Some(latest) = history.back() else {
                continue;
            };
            let base = history.front().filter(|b| {
                b.timestamp_ms < latest.timestamp_ms && b.generation == latest.generation
            });
            for (gauge, value) in &latest.values.gauges {
                *out.gauges.entry(gauge.clone()).or_default() += value;
            }
            for (counter, now) in &latest.values.counters {
                *out.totals.entry(counter.clone()).or_default() += now;
                *out.sources.entry(counter.clone()).or_default() += 1;
                let Some(base) = base else { continue };
                let before = base.values.counters.get(counter).copied().unwrap_or(0.0);
                if *now < before {
                    continue;
                }
                let seconds = (latest.timestamp_ms - base.timestamp_ms) as f64 / 1000.0;
                *out.increases.entry(counter.clone()).or_default() += now - before;
                *out.rates.entry(counter.clone()).or_default() += (now - before) / seconds;
            }
            let Some(base) = base else { continue };
            for (histogram, now) in &latest.values.histograms {
                let before = base.values.histograms.get(histogram);
                let Some(increase) = bucket_increase(now, before) else {
                    continue;
                };
                let sum = out.histograms.entry(histogram.clone()).or_default();
                if sum.is_empty() {
                    *sum = increase;
                } else if same_bounds(sum, &increase) {
                    for (into, (_, n)) in sum.iter_mut().zip(increase) {
                        into.1 += n;
                    }
                } else {
                    histogram_bounds_differ.push(histogram.clone());
                }
            }
        }
        for histogram in histogram_bounds_differ {
            out.histograms.remove(&histogram);
        }
        out
    }
}

fn same_bounds(a: &Buckets, b: &Buckets) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0)
}

/// Per-bucket increases from two cumulative snapshots (`None` when a count went down or the
/// bounds changed).
fn bucket_increase(now: &Buckets, before: Option<&Buckets>) -> Option<Buckets> {
    let mut out = Vec::with_capacity(now.len());
    let mut below = 0.0;
    for (i, (le, cumulative)) in now.iter().enumerate() {
        let earlier = match before {
            Some(before) => {
                let (bound, count) = before.get(i)?;
                if bound != le {
                    return None;
                }
                *count
            }
            None => 0.0,
        };
        let increase = cumulative - earlier;
        if increase < 0.0 {
            return None;
        }
        out.push((*le, increase - below));
        below = increase;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(timestamp_ms: i64, generation: i64, pushes: f64) -> Snapshot {
        let mut values = Values::default();
        values
            .counters
            .insert(Counter::Pushes("eds".into()), pushes);
        Snapshot {
            timestamp_ms,
            generation,
            values,
        }
    }

    #[test]
    fn rates_over_the_window_skip_restarts_and_resets() {
        let pushes = Counter::Pushes("eds".into());
        let mut store = SourceStore::new(30_000, 2);
        let a = SourceId::Target("http://a".into());
        let b = SourceId::Target("http://b".into());
        store.record(a.clone(), snapshot(0, 1, 10.0));
        store.record(a.clone(), snapshot(10_000, 1, 30.0));
        store.record(b.clone(), snapshot(0, 1, 50.0));
        store.record(b.clone(), snapshot(10_000, 2, 5.0));
        let totals = store.totals();
        assert_eq!(totals.rates[&pushes], 2.0);
        assert_eq!(totals.increases[&pushes], 20.0);
        assert_eq!(totals.totals[&pushes], 35.0);
        assert_eq!(totals.sources[&pushes], 2);

        store.record(SourceId::Target("http://c".into()), snapshot(0, 1, 1.0));
        assert_eq!(store.refused_snapshots, 1);
        store.record(a.clone(), snapshot(50_000, 1, 20.0));
        assert!(!store.totals().rates.contains_key(&pushes));
    }

    #[test]
    fn bucket_increases_are_per_bucket() {
        let before = vec![(1.0, 2.0), (f64::INFINITY, 4.0)];
        let now = vec![(1.0, 5.0), (f64::INFINITY, 10.0)];
        assert_eq!(
            bucket_increase(&now, Some(&before)),
            Some(vec![(1.0, 3.0), (f64::INFINITY, 3.0)])
        );
        assert_eq!(bucket_increase(&before, Some(&now)), None);
    }
}
