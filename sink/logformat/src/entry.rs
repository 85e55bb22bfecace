//! From a joined container-log line to a Loki entry, and from a pod log path to its stream labels:
//! the glue the sink's log-tailing stage runs per line. Access-log fields (Envoy's or ztunnel's,
//! as the file's [`LineFormat`] says) go into structured metadata, never labels; lines that are
//! not access logs pass through unparsed.

use crate::access::parse_access_log;
use crate::cri::{JoinedLine, PodLogPath};
use crate::loki::{LabelError, LabelPairAdapter, LogEntry, StreamLabels};
use crate::ztunnel::parse_ztunnel_access_log;

/// The `job` label Istio's dashboards and the Grafana Istio integration expect.
pub const DEFAULT_JOB: &str = "integrations/istio";

/// Stream labels for a container's log file: `namespace`, `pod`, `container`, `job`, then the
/// static labels. A static label may not reuse one of the four names.
pub fn pod_stream_labels(
    path: &PodLogPath<'_>,
    job: &str,
    static_labels: &[(String, String)],
) -> Result<StreamLabels, LabelError> {
    let fixed = [
        ("namespace", path.namespace),
        ("pod", path.pod),
        ("container", path.container),
        ("job", job),
    ];
    StreamLabels::new(
        fixed.into_iter().chain(
            static_labels
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        ),
    )
}

/// Which access records a container's lines are read as: the proxies write different ones, and
/// all of them name their container `istio-proxy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// Lines pass through without structured metadata.
    Unparsed,
    /// Envoy's access logs in Istio's TEXT and JSON formats (sidecars, gateways, waypoints).
    Envoy,
    /// ztunnel's connection records, text and JSON (ambient mode's node proxy).
    Ztunnel,
}

/// Turns a joined line into an entry with its CRI timestamp. When the line is an access record in
/// `format` (either encoding), its fields become structured metadata. Invalid UTF-8 is replaced
/// with U+FFFD, as Loki only stores UTF-8 lines.
pub fn log_entry_from_line(line: JoinedLine<'_>, format: LineFormat) -> LogEntry {
    let bytes = line.message.into_owned();
    // `from_utf8` validates much faster than the lossy path, which only invalid lines take.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
    let pairs: Vec<(String, String)> = match format {
        LineFormat::Unparsed => Vec::new(),
        LineFormat::Envoy => parse_access_log(&text)
            .map(|record| {
                let pairs = record.into_structured_metadata().into_iter();
                pairs
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect()
            })
            .unwrap_or_default(),
        LineFormat::Ztunnel => parse_ztunnel_access_log(&text)
            .map(|record| record.into_structured_metadata())
            .unwrap_or_default(),
    };
    let structured_metadata = pairs
        .into_iter()
        .map(|(name, value)| LabelPairAdapter { name, value })
        .collect();
    LogEntry {
        timestamp_ns: line.timestamp_ns,
        line: text,
        structured_metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::CriStream;
    use std::borrow::Cow;

    fn joined(message: &[u8]) -> JoinedLine<'_> {
        JoinedLine {
            timestamp_ns: 42,
            stream: CriStream::Stdout,
            message: Cow::Borrowed(message),
            truncated: false,
        }
    }

    #[test]
    fn access_log_fields_become_structured_metadata() {
        let line = b"[2023-03-14T08:15:42.118Z] \"POST /cart HTTP/2\" 503 UF upstream_reset_before_response_started{connection_failure} - \"-\" 120 91 3 - \"-\" \"grpc-go/1.56\" \"1c9d\" \"cart:80\" \"10.42.0.8:80\" outbound|80||cart.shop.svc.cluster.local - 10.96.0.20:80 10.42.1.9:40990 - default";
        let entry = log_entry_from_line(joined(line), LineFormat::Envoy);
        assert_eq!(entry.timestamp_ns, 42);
        assert_eq!(entry.line.as_bytes(), line);
        let find = |name: &str| {
            entry
                .structured_metadata
                .iter()
                .find(|pair| pair.name == name)
                .map(|pair| pair.value.as_str())
        };
        assert_eq!(find("method"), Some("POST"));
        assert_eq!(find("response_code"), Some("503"));
        assert_eq!(find("response_flags"), Some("UF"));
        assert_eq!(
            find("upstream_cluster"),
            Some("outbound|80||cart.shop.svc.cluster.local")
        );
        assert_eq!(find("upstream_service_time"), None);
        assert_eq!(find("user_agent"), None);
    }

    #[test]
    fn other_lines_pass_through_without_metadata() {
        let line = b"2024-06-28T06:40:16.285918Z\tinfo\tEnvoy proxy is ready";
        let entry = log_entry_from_line(joined(line), LineFormat::Envoy);
        assert_eq!(entry.line.as_bytes(), line);
        assert!(entry.structured_metadata.is_empty());
        let invalid = log_entry_from_line(joined(b"caf\xe9"), LineFormat::Envoy);
        assert_eq!(invalid.line, "caf\u{fffd}");
    }

    #[test]
    fn ztunnel_fields_become_structured_metadata_only_in_ztunnel_files() {
        let line = b"2026-09-21T14:03:18.120334Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.17:39112 src.workload=\"productpage-v1-54bb874995-hbj5v\" dst.addr=203.0.113.10:443 direction=\"outbound\" bytes_sent=801 duration=\"1873ms\"";
        let entry = log_entry_from_line(joined(line), LineFormat::Ztunnel);
        let pairs: Vec<(&str, &str)> = entry
            .structured_metadata
            .iter()
            .map(|pair| (pair.name.as_str(), pair.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("level", "info"),
                ("message", "connection complete"),
                ("src_addr", "10.244.1.17:39112"),
                ("src_workload", "productpage-v1-54bb874995-hbj5v"),
                ("dst_addr", "203.0.113.10:443"),
                ("direction", "outbound"),
                ("bytes_sent", "801"),
                ("duration", "1873ms"),
            ]
        );
        let envoy = log_entry_from_line(joined(line), LineFormat::Envoy);
        assert!(envoy.structured_metadata.is_empty());
        let unparsed = log_entry_from_line(joined(line), LineFormat::Unparsed);
        assert!(unparsed.structured_metadata.is_empty());
    }

    #[test]
    fn stream_labels_come_from_the_path() {
        let path =
            PodLogPath::parse("/var/log/pods/shop_cart-7f9c_0b1e/istio-proxy/0.log").unwrap();
        let labels =
            pod_stream_labels(&path, DEFAULT_JOB, &[("cluster".into(), "east".into())]).unwrap();
        assert_eq!(
            labels.as_str(),
            r#"{cluster="east", container="istio-proxy", job="integrations/istio", namespace="shop", pod="cart-7f9c"}"#
        );
        assert_eq!(
            pod_stream_labels(&path, DEFAULT_JOB, &[("pod".into(), "x".into())]),
            Err(LabelError::DuplicateName("pod".into()))
        );
    }
}
