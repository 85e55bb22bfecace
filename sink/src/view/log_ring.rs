//! The recent access-log lines the view shows: filter-shipped records and tailed file lines,
//! the newest `view.max_log_lines` together, and the filter by service and status.
//!
//! Owns the line model, the bound and the filter. It must not render Loki entries nor read
//! files: the record and the tailed entry come rendered from the stages that ship them.

use std::collections::VecDeque;

use meshtap_logformat::loki::LogEntry;
use serde::Serialize;

/// Where a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogOrigin {
    /// An access-log record in a filter report.
    Filter,
    /// A line of a tailed container log file.
    File,
}

/// One line as the view shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub timestamp_ms: i64,
    pub origin: LogOrigin,
    pub namespace: String,
    pub pod: String,
    /// The destination service of an access log (from its upstream cluster or authority).
    pub service: Option<String>,
    /// The response code of an access log.
    pub status: Option<u32>,
    pub line: String,
}

/// Which lines to show.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// Exact service name.
    pub service: Option<String>,
    /// `2xx`, `4xx`, `5xx`… or an exact code.
    pub status: Option<String>,
}

impl LogFilter {
    fn keeps(&self, line: &LogLine) -> bool {
        let service_ok = self
            .service
            .as_ref()
            .is_none_or(|want| line.service.as_ref() == Some(want));
        let status_ok = self.status.as_deref().is_none_or(|want| {
            let Some(code) = line.status else {
                return false;
            };
            match want.strip_suffix("xx") {
                Some(class) => code.to_string().starts_with(class),
                None => code.to_string() == want,
            }
        });
        service_ok && status_ok
    }
}

/// The service an access log is about: the host of an `outbound|port|subset|host` upstream
/// cluster; else (an inbound line, whose cluster is `inbound|port||` since Istio 1.10) the host
/// of the mTLS SNI `outbound_.port_.subset_.host` the client asked for; else the authority
/// without its port. So a request shows under one name on both of its sidecars.
pub fn service_of(
    upstream_cluster: Option<&str>,
    requested_server_name: Option<&str>,
    authority: Option<&str>,
) -> Option<String> {
    let from_cluster = upstream_cluster
        .and_then(|cluster| cluster.split('|').nth(3))
        .filter(|host| !host.is_empty());
    let from_sni = requested_server_name
        .filter(|sni| sni.starts_with("outbound_."))
        .and_then(|sni| sni.splitn(4, '_').nth(3))
        .and_then(|host| host.strip_prefix('.'))
        .filter(|host| !host.is_empty());
    let from_authority = authority
        .map(|a| a.rsplit_once(':').map_or(a, |(host, _)| host))
        .filter(|host| !host.is_empty() && *host != "-");
    from_cluster
        .or(from_sni)
        .or(from_authority)
        .map(str::to_owned)
}

/// A tailed entry as a line: its access-log fields, when parsed, give service and status.
pub fn tailed_line(namespace: &str, pod: &str, entry: &LogEntry) -> LogLine {
    let field = |name: &str| {
        entry
            .structured_metadata
            .iter()
            .find(|pair| pair.name == name)
            .map(|pair| pair.value.as_str())
    };
    LogLine {
        timestamp_ms: entry.timestamp_ns / 1_000_000,
        origin: LogOrigin::File,
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        service: service_of(
            field("upstream_cluster"),
            field("requested_server_name"),
            field("authority"),
        ),
        status: field("response_code").and_then(|code| code.parse().ok()),
        line: entry.line.clone(),
    }
}

/// The newest lines, oldest first.
#[derive(Debug)]
pub struct LogRing {
    max_lines: usize,
    lines: VecDeque<LogLine>,
}

impl LogRing {
    pub fn new(max_lines: usize) -> LogRing {
        LogRing {
            max_lines,
            lines: VecDeque::with_capacity(max_lines.min(1024)),
        }
    }

    pub fn push(&mut self, line: LogLine) {
        if self.lines.len() == self.max_lines {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// At most `limit` lines `filter` keeps, newest first.
    pub fn newest(&self, filter: &LogFilter, limit: usize) -> Vec<LogLine> {
        self.lines
            .iter()
            .rev()
            .filter(|line| filter.keeps(line))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The services named by kept lines, sorted (for the filter's choices).
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = self
            .lines
            .iter()
            .filter_map(|line| line.service.clone())
            .collect();
        services.sort();
        services.dedup();
        services
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(service: &str, status: Option<u32>) -> LogLine {
        LogLine {
            timestamp_ms: 0,
            origin: LogOrigin::Filter,
            namespace: "default".into(),
            pod: "p".into(),
            service: Some(service.into()),
            status,
            line: format!("{service} {status:?}"),
        }
    }

    #[test]
    fn keeps_the_newest_and_filters_by_service_and_status_class() {
        let mut ring = LogRing::new(3);
        ring.push(line("a", Some(200)));
        ring.push(line("a", Some(503)));
        ring.push(line("b", Some(404)));
        ring.push(line("a", None));
        let all = ring.newest(&LogFilter::default(), 10);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].status, None);
        let five = LogFilter {
            service: Some("a".into()),
            status: Some("5xx".into()),
        };
        let kept = ring.newest(&five, 10);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].status, Some(503));
        let exact = LogFilter {
            service: None,
            status: Some("404".into()),
        };
        assert_eq!(ring.newest(&exact, 10)[0].service.as_deref(), Some("b"));
        assert_eq!(ring.services(), ["a", "b"]);
    }

    #[test]
    fn service_from_cluster_then_authority() {
        assert_eq!(
            service_of(
                Some("outbound|9080||reviews.default.svc.cluster.local"),
                None,
                Some("x:1")
            ),
            Some("reviews.default.svc.cluster.local".into())
        );
        assert_eq!(
            service_of(Some("inbound|9080||"), None, Some("ratings:9080")),
            Some("ratings".into())
        );
        assert_eq!(
            service_of(
                Some("inbound|9080||"),
                Some("outbound_.9080_.v1_.ratings.default.svc.cluster.local"),
                Some("ratings:9080")
            ),
            Some("ratings.default.svc.cluster.local".into())
        );
        assert_eq!(
            service_of(Some("inbound|9080||"), Some("api.example.com"), Some("r:1")),
            Some("r".into())
        );
        assert_eq!(service_of(None, None, Some("-")), None);
    }
}
