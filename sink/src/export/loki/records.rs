//! Filter-shipped access-log records (`Report.access_logs`) as Loki entries: the report message
//! converted to `meshtap_logformat`'s `AccessRecord`, rendered as Istio's TEXT or JSON line, its
//! fields as structured metadata (never labels), and the pod's stream labels.
//!
//! Owns that conversion only; batching and sending belong to the sender.

use meshtap_logformat::access::{render_access_log, AccessLogEncoding, AccessRecord, PeerWorkload};
use meshtap_logformat::loki::{LabelError, LabelPairAdapter, LogEntry, StreamLabels};
use meshtap_report::AccessLogRecord;

fn present(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn peer(workload: &str, namespace: &str) -> Option<PeerWorkload> {
    (!workload.is_empty() || !namespace.is_empty()).then(|| PeerWorkload {
        workload: workload.to_owned(),
        namespace: namespace.to_owned(),
    })
}

/// The report's record as an `AccessRecord` (an empty string is an absent value).
pub fn access_record(record: &AccessLogRecord) -> AccessRecord {
    AccessRecord {
        start_time_ns: record.start_time_ns,
        method: present(&record.method),
        path: present(&record.path),
        protocol: present(&record.protocol),
        response_code: record.response_code,
        response_flags: present(&record.response_flags),
        response_code_details: present(&record.response_code_details),
        connection_termination_details: present(&record.connection_termination_details),
        upstream_transport_failure_reason: present(&record.upstream_transport_failure_reason),
        bytes_received: record.bytes_received,
        bytes_sent: record.bytes_sent,
        duration_ms: record.duration_ms,
        upstream_service_time: present(&record.upstream_service_time),
        x_forwarded_for: present(&record.x_forwarded_for),
        user_agent: present(&record.user_agent),
        request_id: present(&record.request_id),
        authority: present(&record.authority),
        upstream_host: present(&record.upstream_host),
        upstream_cluster: present(&record.upstream_cluster),
        upstream_local_address: present(&record.upstream_local_address),
        downstream_local_address: present(&record.downstream_local_address),
        downstream_remote_address: present(&record.downstream_remote_address),
        requested_server_name: present(&record.requested_server_name),
        route_name: present(&record.route_name),
        source: peer(&record.source_workload, &record.source_namespace),
        destination: peer(&record.destination_workload, &record.destination_namespace),
    }
}

/// The Loki entry of one record: the rendered line at the request's start time, with the
/// record's fields (and the `reporter`) as structured metadata.
pub fn record_entry(record: &AccessLogRecord, encoding: AccessLogEncoding) -> LogEntry {
    let access = access_record(record);
    let line = render_access_log(&access, encoding);
    let mut structured_metadata: Vec<LabelPairAdapter> = access
        .into_structured_metadata()
        .into_iter()
        .map(|(name, value)| LabelPairAdapter {
            name: name.to_owned(),
            value,
        })
        .collect();
    if !record.reporter.is_empty() {
        structured_metadata.push(LabelPairAdapter {
            name: "reporter".into(),
            value: record.reporter.clone(),
        });
    }
    LogEntry {
        timestamp_ns: record.start_time_ns,
        line,
        structured_metadata,
    }
}

/// Stream labels of a pod's filter-shipped records: `namespace`, `pod`, `job`, then the
/// endpoint's static labels.
pub fn record_stream_labels(
    namespace: &str,
    pod: &str,
    job: &str,
    static_labels: &[(String, String)],
) -> Result<StreamLabels, LabelError> {
    StreamLabels::new(
        [("namespace", namespace), ("pod", pod), ("job", job)]
            .into_iter()
            .chain(static_labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_istio_text_with_dashes_for_absent_fields() {
        let record = AccessLogRecord {
            start_time_ns: 1_678_781_742_118_000_000,
            method: "GET".into(),
            path: "/productpage".into(),
            protocol: "HTTP/1.1".into(),
            response_code: 200,
            bytes_sent: 5183,
            duration_ms: Some(12),
            authority: "productpage:9080".into(),
            upstream_cluster: "inbound|9080||".into(),
            source_workload: "istio-ingressgateway".into(),
            source_namespace: "istio-system".into(),
            reporter: "destination".into(),
            ..Default::default()
        };
        let entry = record_entry(&record, AccessLogEncoding::Text);
        assert!(
            entry.line.starts_with(
                "[2023-03-14T08:15:42.118Z] \"GET /productpage HTTP/1.1\" 200 - - - \"-\" 0 5183 12 - "
            ),
            "{}",
            entry.line
        );
        assert_eq!(entry.timestamp_ns, record.start_time_ns);
        let find = |name: &str| {
            entry
                .structured_metadata
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.clone())
        };
        assert_eq!(
            find("source_workload").as_deref(),
            Some("istio-ingressgateway")
        );
        assert_eq!(find("reporter").as_deref(), Some("destination"));
        assert_eq!(find("response_flags"), None);
        let json = record_entry(&record, AccessLogEncoding::Json);
        assert!(json.line.starts_with('{') && json.line.contains("\"response_code\":200"));
    }

    #[test]
    fn stream_labels_hold_the_pod_and_static_labels() {
        let labels = record_stream_labels(
            "shop",
            "cart-1",
            "integrations/istio",
            &[("cluster".into(), "c1".into())],
        )
        .unwrap();
        assert_eq!(
            labels.as_str(),
            r#"{cluster="c1", job="integrations/istio", namespace="shop", pod="cart-1"}"#
        );
    }
}
