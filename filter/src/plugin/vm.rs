//! The state one worker VM shares between its root context and its HTTP or connection contexts:
//! the checked configuration, the local node identity, the cumulative totals (request series
//! and plain counters) with their label caps, the connections and gRPC streams still open, the
//! access-log buffer and the per-request caches.
//!
//! Holds the [`IdCaches`] of host values by their raw bytes and the [`Shortcuts`] indexed by
//! their ids, and drops the shortcuts whenever the caches' ids start over. It must not read from
//! the host (the contexts read, this state remembers); its only host call is the one-time
//! warning when the counter label sets overflow.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use meshtap_report::schema::Reporter;
use proxy_wasm::types::LogLevel;

use super::grpc_stream::OpenGrpcStream;
use super::host::log;
use super::id_caches::IdCaches;
use super::tcp::OpenConnection;
use crate::config::FilterConfig;
use crate::record::access_log::VmAccessLog;
use crate::record::labels::LabelValues;
use crate::record::node::LocalNode;
use crate::store::aggregate::{Aggregator, Recorded};
use crate::store::counters::{CounterKind, CounterTotals, CounterValues};
use crate::store::overrides::LabelCaps;
use crate::store::shortcut::Shortcuts;

/// A configured, recording VM.
pub(crate) struct ActiveVm {
    pub config: FilterConfig,
    pub local: LocalNode,
    /// The reporter when it does not depend on the stream: configured, or `waypoint` on a
    /// waypoint's node (decided once, not per request).
    pub fixed_reporter: Option<Reporter>,
    pub totals: Aggregator,
    /// TCP and gRPC message counters.
    pub counters: CounterTotals,
    /// `label_limits`, applied to every computed label set.
    pub label_caps: LabelCaps,
    /// Connections whose deltas are flushed every tick (and at their close).
    pub open_connections: Vec<Weak<RefCell<OpenConnection>>>,
    /// gRPC streams whose message counts are flushed every tick (and at their end).
    pub open_grpc_streams: Vec<Weak<RefCell<OpenGrpcStream>>>,
    pub scratch: LabelValues,
    pub shortcuts: Shortcuts,
    /// Host values by their raw bytes, with the ids the shortcut keys hold.
    pub caches: IdCaches,
    /// The extra dimension values of the label set being recorded.
    pub extra_scratch: Vec<String>,
    /// Access-log selection and buffer, created on first use when `access_log` is enabled.
    pub access_log: Option<VmAccessLog>,
}

impl ActiveVm {
    pub(crate) fn new(config: FilterConfig, local: LocalNode) -> Self {
        let totals = Aggregator::configured(
            config.max_series,
            config.metrics,
            config.histogram_bounds.clone(),
            config.dimensions.columns.len(),
        );
        let counters = CounterTotals::new(config.max_series);
        let label_caps = LabelCaps::new(&config.label_caps);
        let fixed_reporter = config
            .reporter
            .or(local.is_waypoint().then_some(Reporter::Waypoint));
        ActiveVm {
            config,
            local,
            fixed_reporter,
            totals,
            counters,
            label_caps,
            open_connections: Vec::new(),
            open_grpc_streams: Vec::new(),
            scratch: LabelValues::default(),
            shortcuts: Shortcuts::default(),
            caches: IdCaches::default(),
            extra_scratch: Vec::new(),
            access_log: None,
        }
    }

    /// Adds counter deltas to a label set (see [`add_counters`]).
    pub(crate) fn add_counters(
        &mut self,
        kind: CounterKind,
        labels: &[&str],
        delta: &CounterValues,
    ) {
        add_counters(
            &mut self.counters,
            self.config.max_series,
            kind,
            labels,
            delta,
        );
    }

    /// Adds counter deltas to a label set held as owned values.
    pub(crate) fn add_labelled_counters(
        &mut self,
        kind: CounterKind,
        labels: &[String],
        delta: &CounterValues,
    ) {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        self.add_counters(kind, &labels, delta);
    }

    /// Moves the byte counts of open connections into the counters (each tick, before the
    /// totals are published) and forgets connections that ended.
    pub(crate) fn flush_open_connections(&mut self) {
        let open = std::mem::take(&mut self.open_connections);
        for weak in open {
            let Some(connection) = weak.upgrade() else {
                continue;
            };
            let flushed = connection.borrow_mut().take_labelled_delta(false);
            if let Some((labels, delta)) = flushed {
                self.add_labelled_counters(CounterKind::Tcp, &labels, &delta);
            }
            self.open_connections.push(weak);
        }
    }

    /// Called before the cache lookups of each request, connection or stream visit (see
    /// [`IdCaches::start_lookups`]); forgets the shortcuts when the ids start over.
    #[inline]
    pub(crate) fn start_lookups(&mut self) {
        if self.caches.start_lookups() {
            self.shortcuts.forget(self.totals.generation());
        }
    }
}

/// Adds `item` to a list of weakly held open items (visited by each tick, which forgets the
/// ended ones). When the list is full it first drops the items that ended since, so a high rate
/// of short items between two ticks holds memory in proportion to the items open, not to those
/// seen; the list at least doubles when that frees less than half, keeping a push O(1)
/// amortized.
pub(crate) fn register_open<T>(list: &mut Vec<Weak<T>>, item: &Rc<T>) {
    if list.len() == list.capacity() {
        list.retain(|weak| weak.strong_count() > 0);
        if list.len() * 2 > list.capacity() {
            list.reserve(list.len().max(1));
        }
    }
    list.push(Rc::downgrade(item));
}

/// Adds counter deltas to a label set, logging once when the overflow set starts filling.
pub(crate) fn add_counters(
    counters: &mut CounterTotals,
    max_series: usize,
    kind: CounterKind,
    labels: &[&str],
    delta: &CounterValues,
) {
    if let Recorded::Overflow { first: true } = counters.add(kind, labels, delta) {
        log(
            LogLevel::Warn,
            &format!(
                "meshtap: max_series ({max_series}) reached for TCP/gRPC message label sets; new ones now go to the set whose labels are all \"overflow\""
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_lists_forget_ended_items_when_full_and_stay_amortized() {
        let mut list: Vec<Weak<u32>> = Vec::new();
        let mut open = Vec::new();
        for i in 0..10_000u32 {
            let item = Rc::new(i);
            register_open(&mut list, &item);
            if i % 100 == 0 {
                open.push(item);
            }
        }
        assert_eq!(open.len(), 100);
        assert!(list.len() <= 4 * open.len(), "{} entries", list.len());
        let live = list.iter().filter(|w| w.strong_count() > 0).count();
        assert_eq!(live, open.len(), "every open item is still listed");

        // All open: the list grows by doubling, never scanning on every push.
        let mut all: Vec<Weak<u32>> = Vec::new();
        let kept: Vec<Rc<u32>> = (0..1_000).map(Rc::new).collect();
        let mut growths = 0;
        for item in &kept {
            let capacity = all.capacity();
            register_open(&mut all, item);
            growths += usize::from(all.capacity() != capacity);
        }
        assert_eq!(all.len(), kept.len());
        assert!(growths <= 12, "{growths} growths");
    }
}
