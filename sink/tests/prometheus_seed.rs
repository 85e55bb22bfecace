//! The seed's Prometheus set-up ("Option A", `tests/seed/option-a-prometheus.yml`, copied as
//! given) run by the real `meshtap-sink` binary through `prometheus_config:`, its placeholders
//! filled with loopback values and nothing else changed: `kubernetes_sd_configs` role pod finds
//! the stand-in API server through `KUBECONFIG` (as Prometheus outside a cluster would), the
//! `keep` rule leaves exactly the pods annotated `prometheus.io/scrape: "true"`, and the
//! receiver sees the tenant header and basic auth with the seed's empty username.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::sink_process::SinkProcess;
use common::*;
use meshtap_test_support::kube_api::{KubeApi, PodBuilder};

const SEED: &str = include_str!("seed/option-a-prometheus.yml");

/// A loopback metrics endpoint serving `pod_info{app="<app>"} 1` at `/metrics`, counting
/// its scrapes.
async fn metrics_server(app: &'static str) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        "/metrics",
        get(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async move { format!("# TYPE pod_info gauge\npod_info{{app=\"{app}\"}} 1\n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (port, hits)
}

fn kubeconfig(api: &KubeApi) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: stand-in, cluster: {{server: '{}'}}}}]\nusers: [{{name: nobody, user: {{}}}}]\ncontexts: [{{name: stand-in, context: {{cluster: stand-in, user: nobody}}}}]\ncurrent-context: stand-in\n",
        api.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_a_scrapes_exactly_the_annotated_pods_with_tenant_and_basic_auth() {
    let receiver = Receiver::start(vec![]).await;
    let (reviews_port, reviews_hits) = metrics_server("reviews").await;
    let (ratings_port, ratings_hits) = metrics_server("ratings").await;
    let (plain_port, plain_hits) = metrics_server("plain").await;
    let api = KubeApi::start().await;
    for (name, port, annotated) in [
        ("reviews-v1-7d4f", reviews_port, Some("true")),
        ("ratings-v1-5b8c", ratings_port, Some("true")),
        ("plain-6c9d", plain_port, None),
        ("opted-out-1a2b", plain_port, Some("false")),
    ] {
        let mut pod = PodBuilder::new("bookinfo", name, "127.0.0.1")
            .owner("ReplicaSet", name)
            .container("app", "app:1", &[(Some("http-metrics"), port)]);
        if let Some(value) = annotated {
            pod = pod.annotation("prometheus.io/scrape", value);
        }
        api.apply(pod.build());
    }

    let prometheus_yml = SEED
        .replace(
            "https://<region>.xscalerlabs.com/api/v1/push",
            &receiver.url(),
        )
        .replace("<tenant-id>", "tenant-a")
        .replace("<api-token>", "glc_secret");
    assert_ne!(prometheus_yml, SEED, "the placeholders were filled");
    let dir = std::env::temp_dir().join(format!("meshtap-seed-a-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), &prometheus_yml).unwrap();
    std::fs::write(dir.join("kubeconfig"), kubeconfig(&api)).unwrap();
    let sink_yaml = "scrape: {interval: 300ms}\nprometheus_config: prometheus.yml\n";
    let kubeconfig_path = dir.join("kubeconfig");
    let sink = SinkProcess::start_with(&dir, sink_yaml, |command| {
        command
            .env("KUBECONFIG", &kubeconfig_path)
            .env_remove("KUBERNETES_SERVICE_HOST");
    })
    .await;

    let seen = |app: &str| {
        receiver.accepted_series().iter().any(|(labels, _)| {
            label(labels, "__name__") == Some("pod_info") && label(labels, "app") == Some(app)
        })
    };
    let both = wait_until(Duration::from_secs(20), || {
        seen("reviews") && seen("ratings")
    })
    .await;
    assert!(both, "annotated pods scraped; sink log:\n{}", sink.log());
    // A few more scrape rounds of the annotated pods, then the others must still be untouched.
    let rounds = reviews_hits.load(Ordering::Relaxed) + 3;
    assert!(
        wait_until(Duration::from_secs(10), || reviews_hits
            .load(Ordering::Relaxed)
            >= rounds
            && ratings_hits.load(Ordering::Relaxed) >= 3)
        .await
    );
    assert_eq!(
        plain_hits.load(Ordering::Relaxed),
        0,
        "un-annotated and opted-out pods are not scraped"
    );
    assert!(!seen("plain"));

    let up_instances: std::collections::BTreeSet<String> = receiver
        .accepted_series()
        .iter()
        .filter(|(labels, _)| label(labels, "__name__") == Some("up"))
        .map(|(labels, _)| {
            assert_eq!(label(labels, "job"), Some("istio-mesh"));
            label(labels, "instance").unwrap().to_owned()
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = [reviews_port, ratings_port]
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    assert_eq!(
        up_instances, expected,
        "one target per annotated pod's declared port"
    );

    let requests = receiver.sample_requests();
    assert!(!requests.is_empty());
    // base64(":glc_secret"): Prometheus sends the empty username of the seed's basic_auth.
    let basic = format!("Basic {}", "OmdsY19zZWNyZXQ=");
    for request in &requests {
        assert_eq!(request.headers["x-scope-orgid"], "tenant-a");
        assert_eq!(request.headers["authorization"], basic.as_str());
    }
    std::fs::remove_dir_all(&dir).ok();
}
