//! From a joined container-log line to a Loki entry, and from a pod log path to its stream labels:
//! the glue the sink's log-tailing stage runs per line. Access-log fields go into structured
//! metadata, never labels; lines that are not access logs pass through unparsed.

use crate::access::parse_access_log;
use crate::cri::{JoinedLine, PodLogPath};
use crate::loki::{LabelError, LabelPairAdapter, LogEntry, StreamLabels};

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

/// Turns a joined line into an entry with its CRI timestamp. When `parse_access_logs` is set and
/// the line is an Istio access log (TEXT or JSON), its fields become structured metadata. Invalid
/// UTF-8 is replaced with U+FFFD, as Loki only stores UTF-8 lines.
pub fn log_entry_from_line(line: JoinedLine<'_>, parse_access_logs: bool) -> LogEntry {
    let bytes = line.message.into_owned();
    // `from_utf8` validates much faster than the lossy path, which only invalid lines take.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
    let structured_metadata = if parse_access_logs {
        parse_access_log(&text)
            .map(|record| {
                record
                    .into_structured_metadata()
                    .into_iter()
                    .map(|(name, value)| LabelPairAdapter {
                        name: name.to_owned(),
                        value,
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
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
        let entry = log_entry_from_line(joined(line), true);
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
        let entry = log_entry_from_line(joined(line), true);
        assert_eq!(entry.line.as_bytes(), line);
        assert!(entry.structured_metadata.is_empty());
        let invalid = log_entry_from_line(joined(b"caf\xe9"), true);
        assert_eq!(invalid.line, "caf\u{fffd}");
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
