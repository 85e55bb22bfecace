//! Filter-shipped access logs across worker VMs: the batch a worker VM hands to the leader
//! through Envoy's shared queue, the leader's gathering of the batches into one report's records
//! (at most `max_per_interval`, the oldest by start time) and the proxy-wide cumulative count of
//! dropped records in shared data.
//!
//! Every bound drops by counting: a record that does not fit is added to a `dropped` count that
//! travels with the records and ends in the report's `FilterStats.access_logs_dropped`. Which
//! requests are kept and what a record holds is [`crate::record::access_log`]'s; this module
//! works over [`SharedStore`] and must not call the host (the glue, `plugin::access_log`, moves
//! the batches).

use meshtap_report::AccessLogRecord;
use prost::Message;

use crate::proxy::coordinate::{CoordError, SharedStore, MAX_CAS_ATTEMPTS};

/// Name of the shared queue worker VMs enqueue their batches on.
pub(crate) const QUEUE_NAME: &str = "meshtap/access_log";
/// Shared-data key of the proxy's cumulative count of dropped records (8 bytes, little-endian).
pub(crate) const DROPPED_KEY: &str = "meshtap/access_log/dropped";

/// What a worker VM hands to the leader through the shared queue: its records since its last
/// batch and the records it dropped meanwhile.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccessLogBatchPb {
    #[prost(message, repeated, tag = "1")]
    pub records: Vec<AccessLogRecord>,
    #[prost(uint64, tag = "2")]
    pub dropped: u64,
}

/// The leader's gathering of batches for one report: at most `max` records (the oldest by start
/// time), every other record counted as dropped.
#[derive(Debug, Default)]
pub(crate) struct ReportLogs {
    max: usize,
    records: Vec<AccessLogRecord>,
    dropped: u64,
}

impl ReportLogs {
    pub(crate) fn new(max_per_interval: u32) -> ReportLogs {
        ReportLogs {
            max: max_per_interval as usize,
            ..ReportLogs::default()
        }
    }

    /// Adds a batch from the queue; an undecodable one is counted as one dropped record.
    pub(crate) fn absorb(&mut self, bytes: &[u8]) {
        match AccessLogBatchPb::decode(bytes) {
            Ok(batch) => {
                self.dropped += batch.dropped;
                self.records.extend(batch.records);
                self.trim();
            }
            Err(_) => self.dropped += 1,
        }
    }

    /// Keeps the `max` oldest records so memory stays bounded while batches are absorbed.
    fn trim(&mut self) {
        if self.records.len() > self.max {
            self.records.sort_by_key(|r| r.start_time_ns);
            self.dropped += (self.records.len() - self.max) as u64;
            self.records.truncate(self.max);
        }
    }

    /// The report's records in start-time order, and the records dropped in this gathering.
    pub(crate) fn finish(mut self) -> (Vec<AccessLogRecord>, u64) {
        self.records.sort_by_key(|r| r.start_time_ns);
        (self.records, self.dropped)
    }
}

/// Adds `n` to the proxy's cumulative count of dropped records and returns the new total.
pub(crate) fn add_dropped(store: &dyn SharedStore, n: u64) -> Result<u64, CoordError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (current, cas) = store
            .get(DROPPED_KEY)
            .map(|(bytes, cas)| (stored_count(&bytes), cas))
            .unwrap_or((0, 0));
        if n == 0 {
            return Ok(current);
        }
        let total = current.saturating_add(n);
        if store.set(DROPPED_KEY, &total.to_le_bytes(), cas).is_ok() {
            return Ok(total);
        }
    }
    Err(CoordError::Contended(DROPPED_KEY))
}

/// The count stored under [`DROPPED_KEY`]; 0 for anything that is not 8 bytes.
fn stored_count(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests;
