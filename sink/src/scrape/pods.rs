//! Kubernetes pods as scrape targets: a pod annotated `prometheus.io/scrape: "true"`, not
//! finished and with an IP, becomes one target at `<pod IP>:<prometheus.io/port>` (else its
//! first declared container port) and `prometheus.io/path` (else the job's path), scheme from
//! `prometheus.io/scheme`. Istio rewrites these annotations to its agent's merged endpoint
//! `15020 /stats/prometheus`, so `instance` = `<pod IP>:15020`, as on the filter's series.
//!
//! Owns the pod → discovered-labels rule: `__address__`, `__metrics_path__`, `__scheme__`,
//! `namespace`, `pod`, `container` (the container declaring the port, else `istio-proxy` when
//! present, else the first) and `__meta_kubernetes_pod_*` labels for relabeling. It must not
//! talk to the API server.

use k8s_openapi::api::core::v1::Pod;

use super::relabel::Labels;

const SCRAPE: &str = "prometheus.io/scrape";
const PORT: &str = "prometheus.io/port";
const PATH: &str = "prometheus.io/path";
const SCHEME: &str = "prometheus.io/scheme";

/// A Kubernetes label or annotation name as a Prometheus label-name suffix.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The discovered labels of a pod's target, or `None` when the pod is not to be scraped.
pub fn pod_target_labels(pod: &Pod) -> Option<Labels> {
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref()?;
    if annotations.get(SCRAPE).map(String::as_str) != Some("true") {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let declared = containers.iter().flat_map(|c| {
        c.ports
            .iter()
            .flatten()
            .map(move |p| (c.name.as_str(), p.container_port))
    });
    let port: i32 = match annotations.get(PORT) {
        Some(port) => port.parse().ok().filter(|p| (1..=65535).contains(p))?,
        None => declared.clone().next()?.1,
    };
    let container = declared
        .clone()
        .find(|(_, p)| *p == port)
        .map(|(name, _)| name)
        .or_else(|| {
            containers
                .iter()
                .find(|c| c.name == "istio-proxy")
                .map(|c| c.name.as_str())
        })
        .or_else(|| containers.first().map(|c| c.name.as_str()));
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    let mut labels: Labels = vec![
        ("__address__".into(), format!("{host}:{port}")),
        ("__meta_kubernetes_pod_ip".into(), ip.to_owned()),
    ];
    if let Some(path) = annotations.get(PATH) {
        labels.push(("__metrics_path__".into(), path.clone()));
    }
    if let Some(scheme) = annotations.get(SCHEME) {
        labels.push(("__scheme__".into(), scheme.clone()));
    }
    if let Some(namespace) = &meta.namespace {
        labels.push(("namespace".into(), namespace.clone()));
    }
    if let Some(name) = &meta.name {
        labels.push(("pod".into(), name.clone()));
    }
    if let Some(container) = container {
        labels.push(("container".into(), container.to_owned()));
    }
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) {
        labels.push(("__meta_kubernetes_pod_node_name".into(), node.clone()));
    }
    for (name, value) in meta.labels.iter().flatten() {
        labels.push((
            format!("__meta_kubernetes_pod_label_{}", sanitize(name)),
            value.clone(),
        ));
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: &str, ip: &str) -> Pod {
        serde_json::from_str(&format!(
            r#"{{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {{"name": "reviews-v1-5c5b4d9f8-abcde", "namespace": "default", "uid": "u1",
    "labels": {{"app": "reviews", "service.istio.io/canonical-name": "reviews"}},
    "annotations": {annotations}}},
  "spec": {{"nodeName": "node-1", "containers": [
    {{"name": "reviews", "image": "reviews:1", "ports": [{{"containerPort": 9080, "protocol": "TCP"}}]}},
    {{"name": "istio-proxy", "image": "proxyv2:1.14.3", "ports": [{{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}}]}}]}},
  "status": {{"phase": "Running", "podIP": "{ip}", "podIPs": [{{"ip": "{ip}"}}]}}
}}"#
        ))
        .unwrap()
    }

    fn get<'a>(labels: &'a Labels, name: &str) -> Option<&'a str> {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn istio_rewritten_annotations_make_a_15020_target() {
        let p = pod(
            r#"{"prometheus.io/scrape": "true", "prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus"}"#,
            "10.1.2.3",
        );
        let labels = pod_target_labels(&p).unwrap();
        assert_eq!(get(&labels, "__address__"), Some("10.1.2.3:15020"));
        assert_eq!(get(&labels, "__metrics_path__"), Some("/stats/prometheus"));
        assert_eq!(get(&labels, "namespace"), Some("default"));
        assert_eq!(get(&labels, "pod"), Some("reviews-v1-5c5b4d9f8-abcde"));
        assert_eq!(get(&labels, "container"), Some("istio-proxy"));
        assert_eq!(
            get(
                &labels,
                "__meta_kubernetes_pod_label_service_istio_io_canonical_name"
            ),
            Some("reviews")
        );
    }

    #[test]
    fn unannotated_bad_port_and_ipv6_pods() {
        assert!(pod_target_labels(&pod("{}", "10.1.2.3")).is_none());
        assert!(pod_target_labels(&pod(
            r#"{"prometheus.io/scrape": "true", "prometheus.io/port": "http"}"#,
            "10.1.2.3"
        ))
        .is_none());
        let labels =
            pod_target_labels(&pod(r#"{"prometheus.io/scrape": "true"}"#, "fd00::7")).unwrap();
        assert_eq!(get(&labels, "__address__"), Some("[fd00::7]:9080"));
        assert_eq!(get(&labels, "container"), Some("reviews"));
        assert_eq!(get(&labels, "__metrics_path__"), None);
    }
}
