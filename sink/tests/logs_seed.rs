//! The seed's Alloy log config (`tests/seed/logs-alloy.alloy`), translated key for key into
//! `tests/seed/logs-alloy.sink.yaml`, run in-process against the Kubernetes API stand-in (found
//! through `KUBECONFIG`, as Alloy outside a cluster finds it) on CRI files laid out as the
//! kubelet lays them out (`<root>/<ns>_<pod>_<uid>/<container>/0.log`): each discovered
//! container's file becomes the stream `{namespace, pod, container, job="integrations/istio"}`,
//! files of pods the API does not list are not read, and the pushes carry the bearer token and
//! the tenant from the environment variables the seed names.
//!
//! Only the paths change: `/var/log/pods` and the positions file move under a scratch root, and
//! the Loki URL points at the loopback receiver.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::wait_until;
use meshtap_sink::{RunningSink, SinkConfig};
use meshtap_test_support::kube_api::{KubeApi, PodBuilder};
use meshtap_test_support::loki::LokiReceiver;

const TRANSLATED: &str = include_str!("seed/logs-alloy.sink.yaml");

fn write_cri(path: &Path, message: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!("2024-06-28T06:40:16.284918Z stdout F {message}\n"),
    )
    .unwrap();
}

/// `{a="1", b="2"}` as sorted pairs.
fn pairs(labels: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .trim_matches(['{', '}'])
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    out.sort();
    out
}

fn stream(namespace: &str, pod: &str, container: &str) -> Vec<(String, String)> {
    pairs(&format!(
        "{{container=\"{container}\", job=\"integrations/istio\", namespace=\"{namespace}\", pod=\"{pod}\"}}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn translated_alloy_config_gives_the_seed_streams() {
    let root = std::env::temp_dir().join(format!("meshtap-logs-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let pods = root.join("pods");
    let loki = LokiReceiver::start(vec![]).await;
    let api = KubeApi::start().await;
    api.apply(
        PodBuilder::new("bookinfo", "reviews-v1-7d4f", "10.244.0.12")
            .container("reviews", "reviews:1", &[(Some("http"), 9080)])
            .container(
                "istio-proxy",
                "proxyv2:1.22",
                &[(Some("http-envoy-prom"), 15090), (None, 15021)],
            )
            .init_container("istio-init", "proxyv2:1.22")
            .build(),
    );
    let uid = PodBuilder::uid("reviews-v1-7d4f");
    let pod_dir = pods.join(format!("bookinfo_reviews-v1-7d4f_{uid}"));
    write_cri(&pod_dir.join("istio-proxy/0.log"), "proxy line");
    write_cri(&pod_dir.join("reviews/0.log"), "app line");
    write_cri(
        &pods.join("default_gone-1_uid-gone/istio-proxy/0.log"),
        "gone line",
    );

    let kubeconfig = root.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: s, cluster: {{server: '{}'}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: s, context: {{cluster: s, user: u}}}}]\ncurrent-context: s\n",
            api.url()
        ),
    )
    .unwrap();
    // The only test of this binary: no other test reads the environment meanwhile.
    std::env::set_var("KUBECONFIG", &kubeconfig);
    std::env::remove_var("KUBERNETES_SERVICE_HOST");

    let yaml = TRANSLATED
        .replace("/var/log/pods", &pods.display().to_string())
        .replace(
            "/var/lib/meshtap",
            &root.join("state").display().to_string(),
        )
        .replace(
            "https://euw1-01.l.xscalerlabs.com/api/v1/logs/push",
            &loki.url(),
        );
    let env = |var: &str| match var {
        "XSCALER_TOKEN" => Some("tok-123".to_owned()),
        "XSCALER_TENANT_ID" => Some("tenant-b".to_owned()),
        _ => None,
    };
    let mut config = SinkConfig::from_yaml(&yaml, &env).expect("the translation is a valid config");
    config.listen = "127.0.0.1:0".parse().unwrap();
    let sink = RunningSink::start(&config).await.expect("sink starts");

    let streams = || {
        let mut seen: Vec<(Vec<(String, String)>, String)> = loki
            .accepted_entries()
            .into_iter()
            .map(|(labels, entry)| (pairs(&labels), entry.line))
            .collect();
        seen.sort();
        seen
    };
    let arrived = wait_until(Duration::from_secs(15), || streams().len() >= 2).await;
    assert!(arrived, "pushes: {:?}", streams());
    // A line written after the first push arrives in a later poll round, by which time the
    // undiscovered pod's file would have been read too.
    let proxy_log = pod_dir.join("istio-proxy/0.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&proxy_log)
        .unwrap();
    file.write_all(b"2024-06-28T06:40:17.000000Z stdout F later line\n")
        .unwrap();
    let later = wait_until(Duration::from_secs(15), || streams().len() >= 3).await;
    assert!(later, "pushes: {:?}", streams());
    let proxy = stream("bookinfo", "reviews-v1-7d4f", "istio-proxy");
    let expected = vec![
        (proxy.clone(), "later line".to_owned()),
        (proxy, "proxy line".to_owned()),
        (
            stream("bookinfo", "reviews-v1-7d4f", "reviews"),
            "app line".to_owned(),
        ),
    ];
    assert_eq!(streams(), expected);
    for push in loki.pushes() {
        assert_eq!(push.headers["authorization"], "Bearer tok-123");
        assert_eq!(push.headers["x-scope-orgid"], "tenant-b");
    }
    sink.shutdown().await;
    std::fs::remove_dir_all(&root).ok();
}
