//! `AccessRecord`: one request as Istio's default access log describes it, plus the peer workloads
//! the filter knows. Owns the field set and its export as Loki structured metadata; parsing and
//! rendering live in `text` and `json`. A missing value (Envoy's `-`, JSON `null`) is `None`.

use crate::time::write_rfc3339_millis;

/// A workload at one end of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerWorkload {
    pub workload: String,
    pub namespace: String,
}

/// One access-log record. Field names follow Istio's JSON access-log keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessRecord {
    /// `%START_TIME%`, nanoseconds since the Unix epoch (rendered with millisecond precision).
    pub start_time_ns: i64,
    pub method: Option<String>,
    /// `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
    pub path: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`, …; `None` for TCP.
    pub protocol: Option<String>,
    /// `0` when no response was sent (downstream disconnect, TCP).
    pub response_code: u32,
    /// Envoy's short flag string (`UH`, `DC`, `UF,URX`); `None` when no flag is set.
    pub response_flags: Option<String>,
    pub response_code_details: Option<String>,
    pub connection_termination_details: Option<String>,
    pub upstream_transport_failure_reason: Option<String>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// `%DURATION%` in milliseconds.
    pub duration_ms: Option<u64>,
    /// The `x-envoy-upstream-service-time` response header, as sent (milliseconds).
    pub upstream_service_time: Option<String>,
    pub x_forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<String>,
    /// `%UPSTREAM_CLUSTER_RAW%`, e.g. `outbound|9080||reviews.default.svc.cluster.local`.
    pub upstream_cluster: Option<String>,
    pub upstream_local_address: Option<String>,
    pub downstream_local_address: Option<String>,
    pub downstream_remote_address: Option<String>,
    /// SNI.
    pub requested_server_name: Option<String>,
    pub route_name: Option<String>,
    /// The calling workload, when known (filter-shipped records; never in Envoy's lines).
    pub source: Option<PeerWorkload>,
    /// The called workload, when known (filter-shipped records; never in Envoy's lines).
    pub destination: Option<PeerWorkload>,
}

/// Names of the structured-metadata entries [`AccessRecord::into_structured_metadata`] can emit,
/// in emission order. User agent, `x-forwarded-for`, local addresses and start time stay in the
/// line only (the entry's timestamp is the log write time).
pub const METADATA_FIELDS: [&str; 23] = [
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "connection_termination_details",
    "upstream_transport_failure_reason",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "downstream_remote_address",
    "requested_server_name",
    "route_name",
    "source_workload",
    "source_namespace",
    "destination_workload",
    "destination_namespace",
];

impl AccessRecord {
    /// `%START_TIME%` as Envoy prints it: `2022-07-22T12:24:09.217Z`.
    pub fn start_time_text(&self) -> String {
        let mut out = String::with_capacity(24);
        write_rfc3339_millis(self.start_time_ns, &mut out);
        out
    }

    /// The record as Loki structured metadata: `(name, value)` pairs named as in
    /// [`METADATA_FIELDS`], in that order, missing values left out. Never labels: these values
    /// are unbounded.
    pub fn into_structured_metadata(self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(METADATA_FIELDS.len());
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(value) = value.filter(|value| !value.is_empty()) {
                pairs.push((name, value));
            }
        };
        put("method", self.method);
        put("path", self.path);
        put("protocol", self.protocol);
        put("response_code", Some(self.response_code.to_string()));
        put("response_flags", self.response_flags);
        put("response_code_details", self.response_code_details);
        put(
            "connection_termination_details",
            self.connection_termination_details,
        );
        put(
            "upstream_transport_failure_reason",
            self.upstream_transport_failure_reason,
        );
        put("bytes_received", Some(self.bytes_received.to_string()));
        put("bytes_sent", Some(self.bytes_sent.to_string()));
        put("duration", self.duration_ms.map(|ms| ms.to_string()));
        put("upstream_service_time", self.upstream_service_time);
        put("request_id", self.request_id);
        put("authority", self.authority);
        put("upstream_host", self.upstream_host);
        put("upstream_cluster", self.upstream_cluster);
        put("downstream_remote_address", self.downstream_remote_address);
        put("requested_server_name", self.requested_server_name);
        put("route_name", self.route_name);
        let (source_workload, source_namespace) = split_peer(self.source);
        put("source_workload", source_workload);
        put("source_namespace", source_namespace);
        let (destination_workload, destination_namespace) = split_peer(self.destination);
        put("destination_workload", destination_workload);
        put("destination_namespace", destination_namespace);
        pairs
    }
}

fn split_peer(peer: Option<PeerWorkload>) -> (Option<String>, Option<String>) {
    match peer {
        Some(peer) => (Some(peer.workload), Some(peer.namespace)),
        None => (None, None),
    }
}

/// Envoy's "no value" marker, normalised to `None` by both parsers.
pub(crate) fn dash_to_none(value: &str) -> Option<String> {
    (value != "-").then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_metadata_follows_field_order_and_skips_missing() {
        let record = AccessRecord {
            start_time_ns: 0,
            method: Some("GET".into()),
            path: Some("/reviews/0".into()),
            response_code: 200,
            bytes_sent: 442,
            duration_ms: Some(22),
            upstream_cluster: Some("inbound|9080||".into()),
            destination: Some(PeerWorkload {
                workload: "reviews-v1".into(),
                namespace: "default".into(),
            }),
            ..AccessRecord::default()
        };
        let pairs = record.into_structured_metadata();
        let names: Vec<&str> = pairs.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "method",
                "path",
                "response_code",
                "bytes_received",
                "bytes_sent",
                "duration",
                "upstream_cluster",
                "destination_workload",
                "destination_namespace"
            ]
        );
        let positions: Vec<usize> = names
            .iter()
            .map(|name| {
                METADATA_FIELDS
                    .iter()
                    .position(|field| field == name)
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(pairs[2].1, "200");
        assert_eq!(pairs[5].1, "22");
        assert_eq!(pairs[7].1, "reviews-v1");
    }

    #[test]
    fn start_time_is_rendered_in_envoy_form() {
        let record = AccessRecord {
            start_time_ns: 1_658_492_649_217_456_789,
            ..AccessRecord::default()
        };
        assert_eq!(record.start_time_text(), "2022-07-22T12:24:09.217Z");
    }
}
