//! The body a leader posts to the sink: the built [`Report`] with the access logs it carries,
//! encoded as protobuf and compressed with snappy ([`meshtap_report::encode`]).
//!
//! Every report goes through [`encode`]. It must not gather the records (the glue dequeues them
//! and counts drops proxy-wide) nor keep them: the records a body carries are handed back, for
//! the leader to hold until the sink answers.

use meshtap_report::{AccessLogRecord, Report};

/// The access logs of one report: the records gathered for it and the proxy's cumulative count
/// of dropped records.
#[derive(Debug, Default)]
pub(crate) struct ReportAccessLogs {
    pub(crate) records: Vec<AccessLogRecord>,
    pub(crate) dropped_total: u64,
}

/// Encodes `report`; with `access_logs` (the filter ships them), the report carries their
/// records and the drop count in `FilterStats.access_logs_dropped`, and the records are handed
/// back with the body.
pub(crate) fn encode(
    mut report: Report,
    access_logs: Option<ReportAccessLogs>,
) -> (Vec<u8>, Option<Vec<AccessLogRecord>>) {
    let Some(access_logs) = access_logs else {
        return (meshtap_report::encode(&report), None);
    };
    if let Some(stats) = report.stats.as_mut() {
        stats.access_logs_dropped = access_logs.dropped_total;
    }
    report.access_logs = access_logs.records;
    let body = meshtap_report::encode(&report);
    (body, Some(report.access_logs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_report::FilterStats;

    fn record(start_time_ns: i64) -> AccessLogRecord {
        AccessLogRecord {
            start_time_ns,
            method: "GET".into(),
            ..Default::default()
        }
    }

    fn report() -> Report {
        Report {
            protocol_version: meshtap_report::PROTOCOL_VERSION,
            stats: Some(FilterStats::default()),
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn access_logs_travel_in_the_body_and_come_back() {
        let logs = ReportAccessLogs {
            records: vec![record(1), record(2)],
            dropped_total: 7,
        };
        let (body, carried) = encode(report(), Some(logs));
        assert_eq!(carried, Some(vec![record(1), record(2)]));
        let decoded = meshtap_report::decode(&body, 1 << 20).unwrap();
        assert_eq!(decoded.access_logs, vec![record(1), record(2)]);
        assert_eq!(decoded.stats.unwrap().access_logs_dropped, 7);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn without_access_logs_the_report_is_encoded_as_built() {
        let (body, carried) = encode(report(), None);
        assert_eq!(carried, None);
        assert_eq!(body, meshtap_report::encode(&report()));
    }
}
