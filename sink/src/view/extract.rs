//! From one source's samples (a report's or a scrape's, after the scrape merge rule) to the
//! cumulative values the view keeps: requests per graph edge, request latency and TCP
//! counters per destination service, ztunnel's L4 counters per workload pair (ambient mode),
//! istiod's push counters, connected proxies and convergence histogram, and scrape `up`.
//!
//! Owns which families the view reads and the per-sample loop: a sample's family is told by
//! its name alone (others are skipped before any label is read), the keys of the busy families
//! come from the source's [`LabelCache`], a histogram's buckets are summed aside and keyed once.
//! It must not compute rates (that is [`super::store`]).

use foldhash::HashMap;

use super::key_types::{
    request_edge, service_key, tcp_counter, Buckets, Counter, Gauge, Histogram, TcpField,
};
use super::keys::{Key, ViewKeys};
use super::label_cache::{LabelCache, RequestKeys};
use super::sample_labels::SampleLabels;

/// Istio's request counter and latency histogram, and its TCP counters.
const REQUESTS: &str = "istio_requests_total";
const DURATION_BUCKET: &str = "istio_request_duration_milliseconds_bucket";
const CONVERGENCE_BUCKET: &str = "pilot_proxy_convergence_time_bucket";

/// istiod's counters of pushes that failed, were rejected or timed out (with or without the
/// `_total` suffix istiod's exporters add or leave out).
const CONTROL_PLANE_FAULTS: [&str; 6] = [
    "pilot_xds_push_errors",
    "pilot_total_xds_rejects",
    "pilot_total_xds_internal_errors",
    "pilot_xds_write_timeout",
    "pilot_xds_push_context_errors",
    "pilot_xds_expired_nonce",
];

/// The name without the `_total` suffix some exporters add to counters.
fn base_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// A family the view reads.
#[derive(Clone, Copy)]
enum Family {
    Requests,
    DurationBucket,
    ConvergenceBucket,
    Up,
    /// `pilot_xds`.
    ConnectedProxies,
    Tcp(TcpField),
    /// `pilot_xds_pushes`, with or without `_total`.
    Pushes,
    /// One of [`CONTROL_PLANE_FAULTS`] or a `pilot_xds_*_reject` counter.
    Fault,
}

impl Family {
    fn of(name: &str) -> Option<Family> {
        if !(name.starts_with("istio_") || name.starts_with("pilot_") || name == "up") {
            return None;
        }
        Some(match name {
            REQUESTS => Family::Requests,
            DURATION_BUCKET => Family::DurationBucket,
            CONVERGENCE_BUCKET => Family::ConvergenceBucket,
            "up" => Family::Up,
            "pilot_xds" => Family::ConnectedProxies,
            _ => return Family::counter(name),
        })
    }

    /// TCP and istiod counters.
    fn counter(name: &str) -> Option<Family> {
        if let Some(field) = TcpField::of_family(name) {
            return Some(Family::Tcp(field));
        }
        let base = base_name(name);
        if base == "pilot_xds_pushes" {
            return Some(Family::Pushes);
        }
        let is_reject = base.starts_with("pilot_xds_") && base.ends_with("_reject");
        (is_reject || CONTROL_PLANE_FAULTS.contains(&base)).then_some(Family::Fault)
    }
}

/// What one source's samples at one time say, by interned key.
#[derive(Debug, Default)]
pub struct Values {
    pub counters: HashMap<Key<Counter>, f64>,
    pub histograms: HashMap<Key<Histogram>, Buckets>,
    pub gauges: HashMap<Key<Gauge>, f64>,
}

impl Values {
    /// Reads the families the view knows from `samples` (one source's, at one time); anything
    /// else is skipped. `cache` is the source's: entries of label sets `samples` do not show
    /// are dropped.
    pub fn read(
        samples: &[impl SampleLabels],
        keys: &mut ViewKeys,
        cache: &mut LabelCache,
    ) -> Values {
        cache.begin();
        let mut reader = Reader {
            keys,
            cache,
            bounds: Bounds::default(),
            last_family: LastFamily::default(),
            pending: None,
            spare: Buckets::new(),
            values: Values::default(),
        };
        for sample in samples {
            reader.sample(sample);
        }
        reader.flush_duration();
        reader.cache.end();
        reader.values
    }
}

/// The buckets of one request-duration histogram being read (see [`Reader::duration_bucket`]).
struct PendingDuration {
    labels_id: usize,
    key: Key<Histogram>,
    buckets: Buckets,
}

/// Bucket bounds read in one batch, by the identity of their `le` text: a batch's samples hold
/// their labels, so one text is parsed once however many histograms use it.
#[derive(Default)]
struct Bounds {
    parsed: Vec<((usize, usize), Option<f64>)>,
    /// Where the next bound is likely found (buckets come in the same order per histogram).
    next: usize,
}

/// Bounds remembered per batch at most (more are parsed every time).
const BOUNDS_KEPT: usize = 64;

impl Bounds {
    fn parse(&mut self, le: Option<&str>) -> Option<f64> {
        let le = le?;
        let id = (le.as_ptr() as usize, le.len());
        let at = match self.parsed.get(self.next) {
            Some((next, _)) if *next == id => Some(self.next),
            _ => self.parsed.iter().position(|(known, _)| *known == id),
        };
        if let Some(at) = at {
            self.next = at + 1;
            return self.parsed[at].1;
        }
        let bound = le.parse().ok();
        if self.parsed.len() < BOUNDS_KEPT {
            self.parsed.push((id, bound));
            self.next = self.parsed.len();
        }
        bound
    }
}

/// The family of the last sample's name, by the identity of its text: a batch's samples hold
/// their labels, and a family's samples come one after the other with one interned name.
#[derive(Default)]
struct LastFamily {
    name: Option<(usize, usize)>,
    family: Option<Family>,
}

impl LastFamily {
    fn of(&mut self, name: &str) -> Option<Family> {
        let id = Some((name.as_ptr() as usize, name.len()));
        if self.name != id {
            self.name = id;
            self.family = Family::of(name);
        }
        self.family
    }
}

/// Adds `count` to the bucket `le`, keeping the buckets sorted.
fn add_bucket(buckets: &mut Buckets, le: f64, count: f64) {
    if buckets
        .last()
        .is_none_or(|(last, _)| last.total_cmp(&le).is_lt())
    {
        buckets.push((le, count));
        return;
    }
    match buckets.binary_search_by(|(bound, _)| bound.total_cmp(&le)) {
        Ok(at) => buckets[at].1 += count,
        Err(at) => buckets.insert(at, (le, count)),
    }
}

fn add_counter(counters: &mut HashMap<Key<Counter>, f64>, key: &Key<Counter>, value: f64) {
    match counters.get_mut(key) {
        Some(sum) => *sum += value,
        None => {
            counters.insert(key.clone(), value);
        }
    }
}

/// The keys of an `istio_requests_total` series.
fn request_keys(keys: &mut ViewKeys, sample: &impl SampleLabels) -> RequestKeys {
    let (edge, is_error) = request_edge(sample);
    let errors = is_error.then(|| keys.counters.intern(Counter::Requests(edge.clone(), true)));
    RequestKeys {
        all: keys.counters.intern(Counter::Requests(edge, false)),
        errors,
    }
}

/// One batch being read.
struct Reader<'a> {
    keys: &'a mut ViewKeys,
    cache: &'a mut LabelCache,
    bounds: Bounds,
    last_family: LastFamily,
    pending: Option<PendingDuration>,
    /// The buckets of the last flushed histogram, cleared, for the next one.
    spare: Buckets,
    values: Values,
}

impl Reader<'_> {
    fn sample(&mut self, sample: &impl SampleLabels) {
        let value = sample.value();
        // Stale markers are NaNs too.
        if value.is_nan() {
            return;
        }
        let Some(family) = self.last_family.of(sample.name()) else {
            return;
        };
        let counters = &mut self.values.counters;
        match family {
            Family::DurationBucket => self.duration_bucket(sample, value),
            Family::Requests => {
                let entry = self.cache.entry(sample);
                let keys = (entry.requests).get_or_insert_with(|| request_keys(self.keys, sample));
                add_counter(counters, &keys.all, value);
                if let Some(errors) = &keys.errors {
                    add_counter(counters, errors, value);
                }
            }
            Family::Tcp(field) => {
                let entry = self.cache.entry(sample);
                let key = entry
                    .tcp(field)
                    .get_or_insert_with(|| self.keys.counters.intern(tcp_counter(sample, field)));
                add_counter(counters, key, value);
            }
            _ => self.rare(family, sample, value),
        }
    }

    /// Families a source has few series of (istiod's, `up`): keyed per sample.
    fn rare(&mut self, family: Family, sample: &impl SampleLabels, value: f64) {
        let keys = &mut *self.keys;
        let values = &mut self.values;
        let counter = match family {
            Family::ConvergenceBucket => {
                if let Some(le) = self.bounds.parse(sample.le()) {
                    let key = keys.histograms.intern(Histogram::Convergence);
                    add_bucket(values.histograms.entry(key).or_default(), le, value);
                }
                return;
            }
            Family::Up => {
                let label = |n: &str| sample.label(n).unwrap_or_default().to_owned();
                let gauge = keys
                    .gauges
                    .intern(Gauge::Up(label("job"), label("instance")));
                values.gauges.insert(gauge, value);
                return;
            }
            Family::ConnectedProxies => {
                let key = keys.gauges.intern(Gauge::ConnectedProxies);
                *values.gauges.entry(key).or_default() += value;
                return;
            }
            Family::Pushes => Counter::Pushes(sample.label("type").unwrap_or("unknown").into()),
            Family::Fault => Counter::ControlPlaneFault(base_name(sample.name()).to_owned()),
            Family::Requests | Family::DurationBucket | Family::Tcp(_) => {
                unreachable!("read by Reader::sample")
            }
        };
        add_counter(&mut values.counters, &keys.counters.intern(counter), value);
    }

    /// A bucket of `istio_request_duration_milliseconds`: a histogram's buckets come one after
    /// the other and share their label set, so they are summed aside and the histogram's key is
    /// looked up once per histogram, not once per bucket.
    fn duration_bucket(&mut self, sample: &impl SampleLabels, value: f64) {
        let Some(le) = self.bounds.parse(sample.le()) else {
            return;
        };
        let labels_id = sample.shared_labels_id();
        if self
            .pending
            .as_ref()
            .is_none_or(|p| p.labels_id != labels_id)
        {
            self.flush_duration();
            let entry = self.cache.entry(sample);
            let key = entry.duration.get_or_insert_with(|| {
                let histogram = Histogram::RequestDuration(service_key(sample));
                self.keys.histograms.intern(histogram)
            });
            self.pending = Some(PendingDuration {
                labels_id,
                key: key.clone(),
                buckets: std::mem::take(&mut self.spare),
            });
        }
        let pending = self.pending.as_mut().expect("set above");
        add_bucket(&mut pending.buckets, le, value);
    }

    fn flush_duration(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        match self.values.histograms.get_mut(&pending.key) {
            Some(buckets) if same_les(buckets, &pending.buckets) => {
                for (into, (_, count)) in buckets.iter_mut().zip(&pending.buckets) {
                    into.1 += count;
                }
            }
            Some(buckets) => {
                for &(le, count) in &pending.buckets {
                    add_bucket(buckets, le, count);
                }
            }
            None => {
                let buckets = pending.buckets.clone();
                self.values.histograms.insert(pending.key, buckets);
            }
        }
        self.spare = pending.buckets;
        self.spare.clear();
    }
}

/// Whether two bucket lists have the same bounds in the same order, as [`add_bucket`] tells
/// bounds apart.
fn same_les(a: &Buckets, b: &Buckets) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0.total_cmp(&y.0).is_eq())
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
