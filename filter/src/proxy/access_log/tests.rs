//! The leader's per-report bound on the VMs' access-log batches and the proxy-wide dropped
//! count in shared data.

use super::*;
use crate::proxy::coordinate::memory::MemoryStore;

fn record_at(start_time_ns: i64) -> AccessLogRecord {
    AccessLogRecord {
        start_time_ns,
        ..AccessLogRecord::default()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn leader_keeps_the_oldest_records_up_to_the_bound() {
    let batch = |starts: &[i64], dropped| {
        AccessLogBatchPb {
            records: starts.iter().map(|s| record_at(*s)).collect(),
            dropped,
        }
        .encode_to_vec()
    };
    let mut logs = ReportLogs::new(3);
    logs.absorb(&batch(&[50, 10], 1));
    logs.absorb(&batch(&[40, 20, 60], 2));
    logs.absorb(b"\xff not a batch");
    let (records, dropped) = logs.finish();
    let starts: Vec<i64> = records.iter().map(|r| r.start_time_ns).collect();
    assert_eq!(starts, [10, 20, 40]);
    assert_eq!(
        dropped,
        1 + 2 + 2 + 1,
        "VM drops, two over the bound, one bad batch"
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn dropped_count_accumulates_in_shared_data() {
    let store = MemoryStore::default();
    assert_eq!(add_dropped(&store, 0), Ok(0));
    assert_eq!(add_dropped(&store, 5), Ok(5));
    assert_eq!(add_dropped(&store, 0), Ok(5));
    assert_eq!(add_dropped(&store, 2), Ok(7));
}
