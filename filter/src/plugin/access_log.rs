//! The glue of filter-shipped access logs: the per-request hook that reads the extra host values
//! of a kept request, the tick hand-over of a worker VM's batch to Envoy's shared queue, and the
//! leader's side (dequeue every batch and bound the report's records, hold the records of the
//! report in flight, put them back on the queue when the post fails). The report room encodes
//! the records into the body ([`crate::report::encode`]).
//!
//! Selection, record building and the per-VM bound are [`crate::record::access_log`]'s, the
//! batches, the per-report bound and the shared drop count [`crate::proxy::access_log`]'s; this
//! module only moves data between the host and them. Nothing here runs when `access_log.enabled` is false, and the
//! extra values are read only for a request that was selected and fits the buffer.

use meshtap_report::AccessLogRecord;
use prost::Message;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType};

use super::host::{header, log, property, HostStore, PropertyPath};
use super::peers::StreamPeers;
use super::vm::ActiveVm;
use crate::config::FilterConfig;
use crate::proxy::access_log::{add_dropped, AccessLogBatchPb, ReportLogs, QUEUE_NAME};
use crate::record::access_log::{
    build_record, HostValue, RecordContext, RequestOutcome, VmAccessLog,
};
use crate::report::ReportAccessLogs;

/// Batches a leader dequeues per report at most (more wait for the next report).
const MAX_BATCHES_PER_REPORT: usize = 4_096;

fn now_ns() -> i64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

fn read(value: HostValue) -> Option<Vec<u8>> {
    match value {
        HostValue::Property(path) => property(PropertyPath(path)),
        HostValue::RequestHeader(name) => header(MapType::HttpRequestHeaders, name),
        HostValue::ResponseHeader(name) => header(MapType::HttpResponseHeaders, name),
    }
}

/// The shared queue of this vm_id (registering an existing name returns its id).
fn queue() -> Option<u32> {
    hostcalls::register_shared_queue(QUEUE_NAME).ok()
}

fn enqueue(batch: &AccessLogBatchPb) -> bool {
    queue()
        .is_some_and(|id| hostcalls::enqueue_shared_queue(id, Some(&batch.encode_to_vec())).is_ok())
}

/// Per-request hook of `on_log`: selects the request and, if kept, reads its extra values and
/// buffers its record. The selection uses only what the metrics path already read.
pub(super) fn on_request(vm: &mut ActiveVm, peers: &StreamPeers, outcome: RequestOutcome) {
    let Some(config) = vm.config.access_log else {
        return;
    };
    let ActiveVm {
        access_log,
        local,
        caches,
        ..
    } = vm;
    // Seeded on first use from the host clock, so worker VMs draw different sequences.
    let logs = access_log.get_or_insert_with(|| VmAccessLog::new(config, now_ns() as u64));
    if !logs.admit(&outcome) {
        return;
    }
    let facts = peers.facts(caches);
    let ctx = RecordContext {
        reporter: peers.reporter,
        outcome,
        upstream_cluster: facts.cluster_name.unwrap_or_default(),
        local,
        downstream_peer: facts.downstream_peer,
        upstream_peer: facts.upstream_peer,
        now_ns,
    };
    logs.push(build_record(&ctx, read));
}

/// Tick (and shutdown) hook: hands the VM's buffered records and drop count to the queue. A
/// batch the host refuses is counted as dropped and travels with the next one.
pub(crate) fn flush(vm: &mut ActiveVm) {
    let Some(logs) = vm.access_log.as_mut() else {
        return;
    };
    let Some((records, dropped)) = logs.take_batch() else {
        return;
    };
    let batch = AccessLogBatchPb { records, dropped };
    if !enqueue(&batch) {
        logs.count_dropped(batch.records.len() as u64 + batch.dropped);
    }
}

/// The records of the report this VM has in flight, kept until the sink answers.
#[derive(Default)]
pub(crate) struct LogsInFlight {
    records: Vec<AccessLogRecord>,
    /// Drops not yet added to the shared count (its update was contended).
    uncounted_drops: u64,
}

impl LogsInFlight {
    /// The sink accepted the report: its records are delivered.
    pub(crate) fn delivered(&mut self) {
        self.records.clear();
    }

    /// The report failed: its records go back on the queue for the next report (whichever VM
    /// leads then), where the per-report bound applies again. Records the host refuses to take
    /// back are counted as dropped.
    pub(crate) fn failed(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let batch = AccessLogBatchPb {
            records: std::mem::take(&mut self.records),
            dropped: 0,
        };
        if !enqueue(&batch) {
            self.count_drops(batch.records.len() as u64);
        }
    }

    /// Adds drops to the proxy's shared count and returns the count to report.
    fn count_drops(&mut self, dropped: u64) -> u64 {
        let pending = self.uncounted_drops + dropped;
        match add_dropped(&HostStore::HTTP, pending) {
            Ok(total) => {
                self.uncounted_drops = 0;
                total
            }
            Err(e) => {
                self.uncounted_drops = pending;
                log(
                    LogLevel::Debug,
                    &format!("meshtap: access-log drops not counted yet: {e}"),
                );
                add_dropped(&HostStore::HTTP, 0).unwrap_or(0)
            }
        }
    }

    /// Leader hook: dequeues the access logs of the next report (at most `max_per_interval`
    /// records, the rest counted as dropped) with the proxy's drop count; `None` when access
    /// logs are off.
    pub(crate) fn gather(&mut self, config: &FilterConfig) -> Option<ReportAccessLogs> {
        let access_log = config.access_log?;
        let mut gathered = ReportLogs::new(access_log.max_per_interval);
        if let Some(id) = queue() {
            for _ in 0..MAX_BATCHES_PER_REPORT {
                match hostcalls::dequeue_shared_queue(id) {
                    Ok(Some(bytes)) => gathered.absorb(&bytes),
                    _ => break,
                }
            }
        }
        let (records, dropped) = gathered.finish();
        let dropped_total = self.count_drops(dropped);
        Some(ReportAccessLogs {
            records,
            dropped_total,
        })
    }

    /// Keeps the records of the report just sent until the sink answers.
    pub(crate) fn hold(&mut self, records: Vec<AccessLogRecord>) {
        self.records = records;
    }
}

/// Shutdown hook: hands the VM's buffer over and puts the records of an unanswered report back
/// on the queue, so the next leader sends them.
pub(crate) fn on_done(vm: &mut ActiveVm, in_flight: &mut LogsInFlight) {
    flush(vm);
    in_flight.failed();
}
