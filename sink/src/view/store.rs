//! The recent snapshots of every source (a reporting pod's channel or a scrape target) and
//! the increases over the trailing window summed over sources.
//!
//! Owns the per-source history, its bound (`view.max_sources`), the interned keys snapshots
//! hold and each source's label-set cache, and the counter arithmetic: a source whose
//! generation changed (a proxy restart) or whose counter went down within the window adds no
//! increase for it. It must not decide what is shown (that is [`super::live`]).

use std::collections::VecDeque;

use foldhash::HashMap;

use super::extract::Values;
use super::key_types::{Buckets, Counter, Gauge, Histogram};
use super::keys::{Key, ViewKeys};
use super::label_cache::LabelCache;
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

/// One counter's sums over sources (see [`WindowTotals`]).
#[derive(Default)]
struct CounterSums {
    total: f64,
    sources: usize,
    increase: Option<f64>,
    rate: Option<f64>,
}

/// One source's snapshots and the keys of its label sets.
#[derive(Default)]
struct Source {
    history: VecDeque<Snapshot>,
    labels: LabelCache,
}

/// Snapshot histories per source.
pub struct SourceStore {
    window_ms: i64,
    max_sources: usize,
    keys: ViewKeys,
    sources: HashMap<SourceId, Source>,
    /// Snapshots of sources over `max_sources`, not kept.
    pub refused_snapshots: u64,
}

impl SourceStore {
    pub fn new(window_ms: i64, max_sources: usize) -> SourceStore {
        SourceStore {
            window_ms,
            max_sources,
            keys: ViewKeys::default(),
            sources: HashMap::default(),
            refused_snapshots: 0,
        }
    }

    /// Adds a snapshot of the values `read` makes (given the interners and the source's
    /// label-set cache); keeps the newest one at or before the window start as the base.
    pub fn record(
        &mut self,
        source: SourceId,
        generation: i64,
        timestamp_ms: i64,
        read: impl FnOnce(&mut ViewKeys, &mut LabelCache) -> Values,
    ) {
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            self.refused_snapshots += 1;
            return;
        }
        let window_start = timestamp_ms - self.window_ms;
        let source = self.sources.entry(source).or_default();
        let values = read(&mut self.keys, &mut source.labels);
        let history = &mut source.history;
        history.push_back(Snapshot {
            timestamp_ms,
            generation,
            values,
        });
        while history.len() > 2 && history[1].timestamp_ms <= window_start {
            history.pop_front();
        }
    }

    pub fn remove(&mut self, source: &SourceId) {
        self.sources.remove(source);
    }

    /// The window's increases and the latest values over every source.
    pub fn totals(&self) -> WindowTotals {
        let mut counters: HashMap<&Key<Counter>, CounterSums> = HashMap::default();
        let mut histograms: HashMap<&Key<Histogram>, Buckets> = HashMap::default();
        let mut histogram_bounds_differ = Vec::new();
        let mut gauges: HashMap<&Key<Gauge>, f64> = HashMap::default();
        for history in self.sources.values().map(|s| &s.history) {
            let Some(latest) = history.back() else {
                continue;
            };
            let base = history.front().filter(|b| {
                b.timestamp_ms < latest.timestamp_ms && b.generation == latest.generation
            });
            for (gauge, value) in &latest.values.gauges {
                *gauges.entry(gauge).or_default() += value;
            }
            add_counters(&mut counters, latest, base);
            let Some(base) = base else { continue };
            for (histogram, now) in &latest.values.histograms {
                let before = base.values.histograms.get(histogram);
                let Some(increase) = bucket_increase(now, before) else {
                    continue;
                };
                let sum = histograms.entry(histogram).or_default();
                if sum.is_empty() {
                    *sum = increase;
                } else if same_bounds(sum, &increase) {
                    for (into, (_, n)) in sum.iter_mut().zip(increase) {
                        into.1 += n;
                    }
                } else {
                    histogram_bounds_differ.push(histogram);
                }
            }
        }
        for histogram in histogram_bounds_differ {
            histograms.remove(histogram);
        }
        let mut out = WindowTotals::default();
        for (counter, sums) in counters {
            let counter: &Counter = counter;
            out.totals.insert(counter.clone(), sums.total);
            out.sources.insert(counter.clone(), sums.sources);
            if let Some(increase) = sums.increase {
                out.increases.insert(counter.clone(), increase);
            }
            if let Some(rate) = sums.rate {
                out.rates.insert(counter.clone(), rate);
            }
        }
        let histograms = histograms.into_iter();
        out.histograms = histograms.map(|(k, b)| ((**k).clone(), b)).collect();
        out.gauges = gauges
            .into_iter()
            .map(|(k, v)| ((**k).clone(), v))
            .collect();
        out
    }
}

/// Adds one source's latest counters, and their increases since `base`, to `sums`.
fn add_counters<'a>(
    sums: &mut HashMap<&'a Key<Counter>, CounterSums>,
    latest: &'a Snapshot,
    base: Option<&Snapshot>,
) {
    for (counter, now) in &latest.values.counters {
        let sum = sums.entry(counter).or_default();
        sum.total += now;
        sum.sources += 1;
        let Some(base) = base else { continue };
        let before = base.values.counters.get(counter).copied().unwrap_or(0.0);
        if *now < before {
            continue;
        }
        let seconds = (latest.timestamp_ms - base.timestamp_ms) as f64 / 1000.0;
        *sum.increase.get_or_insert(0.0) += now - before;
        *sum.rate.get_or_insert(0.0) += (now - before) / seconds;
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

    fn record_pushes(
        store: &mut SourceStore,
        source: &SourceId,
        (timestamp_ms, generation): (i64, i64),
        pushes: f64,
    ) {
        store.record(source.clone(), generation, timestamp_ms, |keys, _| {
            let mut values = Values::default();
            let key = keys.counters.intern(Counter::Pushes("eds".into()));
            values.counters.insert(key, pushes);
            values
        });
    }

    #[test]
    fn rates_over_the_window_skip_restarts_and_resets() {
        let pushes = Counter::Pushes("eds".into());
        let mut store = SourceStore::new(30_000, 2);
        let a = SourceId::Target("http://a".into());
        let b = SourceId::Target("http://b".into());
        record_pushes(&mut store, &a, (0, 1), 10.0);
        record_pushes(&mut store, &a, (10_000, 1), 30.0);
        record_pushes(&mut store, &b, (0, 1), 50.0);
        record_pushes(&mut store, &b, (10_000, 2), 5.0);
        let totals = store.totals();
        assert_eq!(totals.rates[&pushes], 2.0);
        assert_eq!(totals.increases[&pushes], 20.0);
        assert_eq!(totals.totals[&pushes], 35.0);
        assert_eq!(totals.sources[&pushes], 2);

        record_pushes(
            &mut store,
            &SourceId::Target("http://c".into()),
            (0, 1),
            1.0,
        );
        assert_eq!(store.refused_snapshots, 1);
        record_pushes(&mut store, &a, (50_000, 1), 20.0);
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
