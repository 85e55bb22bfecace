//! The 15020-shaped body both scrape benches serve or parse: Istio's request counter and
//! duration histogram per label set (25 labels, as a sidecar reports them), then Envoy cluster
//! counters up to the wanted number of series. Shared by `scrape_agent.rs` and
//! `scrape_convert.rs` through `#[path]`; it must stay free of measurement code.

/// Istio's default buckets for `istio_request_duration_milliseconds`.
const BUCKETS: [&str; 20] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/// A sidecar body of exactly `series` samples: per label set Istio's request counter and
/// duration histogram (25 labels), the rest Envoy cluster counters.
pub fn sidecar_body(target: usize, series: usize) -> String {
    let mut body = String::with_capacity(series * 700);
    let per_set = 1 + BUCKETS.len() + 2;
    let sets = series / per_set;
    body.push_str("# TYPE istio_requests_total counter\n");
    let labels = |i: usize| {
        let src = format!("productpage-v{}", i % 7);
        let dst = format!("reviews-{}", i % 13);
        format!(
            "reporter=\"destination\",source_workload=\"{src}\",source_workload_namespace=\"bookinfo\",source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/{src}\",source_app=\"{src}\",source_version=\"v1\",source_canonical_service=\"{src}\",source_canonical_revision=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"{dst}\",destination_workload_namespace=\"bookinfo\",destination_principal=\"spiffe://cluster.local/ns/bookinfo/sa/{dst}\",destination_app=\"{dst}\",destination_version=\"v{target}\",destination_service=\"{dst}.bookinfo.svc.cluster.local\",destination_service_name=\"{dst}\",destination_service_namespace=\"bookinfo\",destination_canonical_service=\"{dst}\",destination_canonical_revision=\"v1\",destination_cluster=\"Kubernetes\",request_protocol=\"http\",response_code=\"{}\",grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"mutual_tls\"",
            [200, 201, 404, 503][i % 4]
        )
    };
    for i in 0..sets {
        body.push_str(&format!(
            "istio_requests_total{{{}}} {}\n",
            labels(i),
            1000 + i
        ));
    }
    body.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for i in 0..sets {
        let l = labels(i);
        for (b, le) in BUCKETS.iter().enumerate() {
            body.push_str(&format!(
                "istio_request_duration_milliseconds_bucket{{{l},le=\"{le}\"}} {}\n",
                10 * b + i
            ));
        }
        body.push_str(&format!(
            "istio_request_duration_milliseconds_sum{{{l}}} {}.5\n",
            77 * i
        ));
        body.push_str(&format!(
            "istio_request_duration_milliseconds_count{{{l}}} {}\n",
            10 * (BUCKETS.len() - 1) + i
        ));
    }
    body.push_str("# TYPE envoy_cluster_upstream_rq_total counter\n");
    for i in 0..series - sets * per_set {
        body.push_str(&format!(
            "envoy_cluster_upstream_rq_total{{cluster_name=\"outbound|9080||svc-{i}.bookinfo.svc.cluster.local\"}} {i}\n"
        ));
    }
    body
}
