//! Istio's standard metrics as the native stats filter (Istio 1.18+) emits them: family names,
//! label names in emission order, and Envoy's default histogram bounds.
//!
//! This is data, not behaviour: how each label value is computed lives in the filter.

/// `istio_requests_total` (counter, one per HTTP/gRPC stream).
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// `istio_request_duration_milliseconds` (histogram, integer milliseconds).
pub const REQUEST_DURATION: &str = "istio_request_duration_milliseconds";
/// `istio_request_bytes` (histogram).
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// `istio_response_bytes` (histogram).
pub const RESPONSE_BYTES: &str = "istio_response_bytes";
/// `istio_request_messages_total` (gRPC, counter, peer labels only).
pub const REQUEST_MESSAGES: &str = "istio_request_messages_total";
/// `istio_response_messages_total` (gRPC, counter, peer labels only).
pub const RESPONSE_MESSAGES: &str = "istio_response_messages_total";
/// `istio_tcp_connections_opened_total`.
pub const TCP_OPENED: &str = "istio_tcp_connections_opened_total";
/// `istio_tcp_connections_closed_total`.
pub const TCP_CLOSED: &str = "istio_tcp_connections_closed_total";
/// `istio_tcp_sent_bytes_total`.
pub const TCP_SENT_BYTES: &str = "istio_tcp_sent_bytes_total";
/// `istio_tcp_received_bytes_total`.
pub const TCP_RECEIVED_BYTES: &str = "istio_tcp_received_bytes_total";
/// `istio_build` (gauge, `component`, `tag`).
pub const BUILD: &str = "istio_build";

/// The 20 peer labels every Istio metric starts with, in Istio's order.
pub const PEER_LABELS: [&str; 20] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
];

/// The 25 labels of the HTTP/gRPC request metrics, in Istio's order.
pub const HTTP_LABELS: [&str; 25] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// The 23 labels of the TCP metrics, in Istio's order.
pub const TCP_LABELS: [&str; 23] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
];

/// Positions in [`HTTP_LABELS`] (the first 20 are also positions in [`PEER_LABELS`] and
/// [`TCP_LABELS`]).
pub mod http {
    pub const REPORTER: usize = 0;
    pub const SOURCE_WORKLOAD: usize = 1;
    pub const SOURCE_CANONICAL_SERVICE: usize = 2;
    pub const SOURCE_CANONICAL_REVISION: usize = 3;
    pub const SOURCE_WORKLOAD_NAMESPACE: usize = 4;
    pub const SOURCE_PRINCIPAL: usize = 5;
    pub const SOURCE_APP: usize = 6;
    pub const SOURCE_VERSION: usize = 7;
    pub const SOURCE_CLUSTER: usize = 8;
    pub const DESTINATION_WORKLOAD: usize = 9;
    pub const DESTINATION_WORKLOAD_NAMESPACE: usize = 10;
    pub const DESTINATION_PRINCIPAL: usize = 11;
    pub const DESTINATION_APP: usize = 12;
    pub const DESTINATION_VERSION: usize = 13;
    pub const DESTINATION_SERVICE: usize = 14;
    pub const DESTINATION_CANONICAL_SERVICE: usize = 15;
    pub const DESTINATION_CANONICAL_REVISION: usize = 16;
    pub const DESTINATION_SERVICE_NAME: usize = 17;
    pub const DESTINATION_SERVICE_NAMESPACE: usize = 18;
    pub const DESTINATION_CLUSTER: usize = 19;
    pub const REQUEST_PROTOCOL: usize = 20;
    pub const RESPONSE_CODE: usize = 21;
    pub const GRPC_RESPONSE_STATUS: usize = 22;
    pub const RESPONSE_FLAGS: usize = 23;
    pub const CONNECTION_SECURITY_POLICY: usize = 24;
}

/// Envoy's default histogram bounds (`HistogramSettingsImpl::defaultBuckets()`), used by Istio
/// for the duration and both byte-size histograms alike.
pub const DEFAULT_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The `reporter` label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client sidecar or a gateway (outbound listener).
    Source,
    /// The server sidecar (inbound listener).
    Destination,
    /// An ambient waypoint (`SERVER_GATEWAY`).
    Waypoint,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
            Reporter::Waypoint => "waypoint",
        }
    }
}

/// Index of the bucket (0..=bounds.len()) an observation falls in: the first bound `>= v`, or the
/// `+Inf` bucket. Prometheus buckets are inclusive upper bounds (`le`).
pub fn bucket_index(bounds: &[f64], v: f64) -> usize {
    bounds.partition_point(|b| *b < v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn label_sets_share_the_peer_prefix() {
        assert_eq!(&HTTP_LABELS[..20], &PEER_LABELS[..]);
        assert_eq!(&TCP_LABELS[..20], &PEER_LABELS[..]);
        assert_eq!(
            HTTP_LABELS[http::CONNECTION_SECURITY_POLICY],
            "connection_security_policy"
        );
        assert_eq!(
            HTTP_LABELS[http::GRPC_RESPONSE_STATUS],
            "grpc_response_status"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn buckets_are_inclusive_upper_bounds() {
        let b = &DEFAULT_BUCKETS;
        assert_eq!(bucket_index(b, 0.0), 0);
        assert_eq!(bucket_index(b, 0.5), 0);
        assert_eq!(bucket_index(b, 0.6), 1);
        assert_eq!(bucket_index(b, 1.0), 1);
        assert_eq!(bucket_index(b, 3600000.0), 18);
        assert_eq!(bucket_index(b, 3600001.0), 19);
    }
}
