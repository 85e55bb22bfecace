//! Kubernetes pods as targets, two ways over the same pod-level labels:
//!
//! - Prometheus' `role: pod` ([`pod_targets`]): every pod with an IP gives one target per
//!   declared container port (`<pod IP>:<port>`) and one per container without ports (the bare
//!   pod IP), init containers included, each with Prometheus' full set of `__meta_kubernetes_*`
//!   labels (namespace; pod name, IP, UID, node name, host IP, phase, ready; labels and
//!   annotations with their `…present_` twins; controller kind and name; container name, image,
//!   ID, init flag, port name, number and protocol). Relabeling picks and shapes them.
//! - meshtap's shorthand ([`annotated_pod_target`]): a pod annotated `prometheus.io/scrape:
//!   "true"`, not finished and with an IP, becomes one target at `<pod IP>:<prometheus.io/port>`
//!   (else its first declared container port), path `prometheus.io/path`, scheme
//!   `prometheus.io/scheme`, labelled `namespace`, `pod`, `container` (the container declaring
//!   the port, else `istio-proxy`, else the first). Istio rewrites these annotations to its
//!   agent's merged endpoint `15020 /stats/prometheus`, so `instance` = `<pod IP>:15020`, as on
//!   the filter's series.
//!
//! Owns the pod → discovered-labels rules. It must not talk to the API server.

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

use super::relabel::Labels;

const SCRAPE: &str = "prometheus.io/scrape";
const PORT: &str = "prometheus.io/port";
const PATH: &str = "prometheus.io/path";
const SCHEME: &str = "prometheus.io/scheme";
const META: &str = "__meta_kubernetes_";

/// A Kubernetes label or annotation name as a Prometheus label-name suffix.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Pushes `__meta_kubernetes_<suffix>` unless `value` is empty (Prometheus treats an empty
/// label as absent).
fn push_meta(labels: &mut Labels, suffix: &str, value: &str) {
    if !value.is_empty() {
        labels.push((format!("{META}{suffix}"), value.to_owned()));
    }
}

/// The pod's IP, when it has one.
fn pod_ip(pod: &Pod) -> Option<&str> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    (!ip.is_empty()).then_some(ip)
}

/// `host:port`, the host in brackets when it is an IPv6 address.
fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn text(value: Option<&String>) -> &str {
    value.map_or("", String::as_str)
}

/// The labels every target of the pod shares, as Prometheus' role pod sets them.
pub fn pod_labels(pod: &Pod) -> Labels {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let mut labels = Labels::new();
    push_meta(&mut labels, "namespace", text(meta.namespace.as_ref()));
    push_meta(&mut labels, "pod_name", text(meta.name.as_ref()));
    push_meta(&mut labels, "pod_uid", text(meta.uid.as_ref()));
    push_meta(&mut labels, "pod_ip", pod_ip(pod).unwrap_or_default());
    push_meta(
        &mut labels,
        "pod_node_name",
        text(pod.spec.as_ref().and_then(|s| s.node_name.as_ref())),
    );
    push_meta(
        &mut labels,
        "pod_host_ip",
        text(status.and_then(|s| s.host_ip.as_ref())),
    );
    push_meta(
        &mut labels,
        "pod_phase",
        text(status.and_then(|s| s.phase.as_ref())),
    );
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("unknown".to_owned(), |c| c.status.to_lowercase());
    push_meta(&mut labels, "pod_ready", &ready);
    for (kind, map) in [("label", &meta.labels), ("annotation", &meta.annotations)] {
        for (name, value) in map.iter().flatten() {
            let name = sanitize(name);
            push_meta(&mut labels, &format!("pod_{kind}_{name}"), value);
            push_meta(&mut labels, &format!("pod_{kind}present_{name}"), "true");
        }
    }
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(owner) = controller {
        push_meta(&mut labels, "pod_controller_kind", &owner.kind);
        push_meta(&mut labels, "pod_controller_name", &owner.name);
    }
    labels
}

/// Prometheus' role pod: one target per declared container port, one per container without
/// ports; none for a pod without an IP.
pub fn pod_targets(pod: &Pod) -> Vec<Labels> {
    let Some(ip) = pod_ip(pod) else {
        return Vec::new();
    };
    let shared = pod_labels(pod);
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let regular = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let statuses = |init: bool| {
        status
            .and_then(|s| match init {
                false => s.container_statuses.as_deref(),
                true => s.init_container_statuses.as_deref(),
            })
            .unwrap_or_default()
    };
    let mut targets = Vec::new();
    for (containers, is_init) in [(regular, false), (init, true)] {
        for container in containers {
            let mut base = shared.clone();
            container_labels(&mut base, container, statuses(is_init), is_init);
            let ports = container.ports.as_deref().unwrap_or_default();
            if ports.is_empty() {
                base.push(("__address__".into(), ip.to_owned()));
                targets.push(base);
                continue;
            }
            for port in ports {
                let mut labels = base.clone();
                labels.push((
                    "__address__".into(),
                    join_host_port(ip, port.container_port),
                ));
                let number = port.container_port.to_string();
                push_meta(&mut labels, "pod_container_port_number", &number);
                push_meta(
                    &mut labels,
                    "pod_container_port_name",
                    port.name.as_deref().unwrap_or_default(),
                );
                push_meta(
                    &mut labels,
                    "pod_container_port_protocol",
                    port.protocol.as_deref().unwrap_or_default(),
                );
                targets.push(labels);
            }
        }
    }
    targets
}

fn container_labels(
    labels: &mut Labels,
    container: &Container,
    statuses: &[ContainerStatus],
    is_init: bool,
) {
    let id = statuses
        .iter()
        .find(|s| s.name == container.name)
        .and_then(|s| s.container_id.as_deref())
        .unwrap_or_default();
    push_meta(labels, "pod_container_name", &container.name);
    push_meta(
        labels,
        "pod_container_image",
        container.image.as_deref().unwrap_or_default(),
    );
    push_meta(labels, "pod_container_id", id);
    push_meta(labels, "pod_container_init", &is_init.to_string());
}

/// meshtap's shorthand: the one target of an annotated pod, or `None` when the pod is not to
/// be scraped.
pub fn annotated_pod_target(pod: &Pod) -> Option<Labels> {
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref()?;
    if annotations.get(SCRAPE).map(String::as_str) != Some("true") {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = pod_ip(pod)?;
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
    let mut labels = pod_labels(pod);
    labels.push(("__address__".into(), join_host_port(ip, port)));
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
        let labels = annotated_pod_target(&p).unwrap();
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
        assert!(annotated_pod_target(&pod("{}", "10.1.2.3")).is_none());
        assert!(annotated_pod_target(&pod(
            r#"{"prometheus.io/scrape": "true", "prometheus.io/port": "http"}"#,
            "10.1.2.3"
        ))
        .is_none());
        let labels =
            annotated_pod_target(&pod(r#"{"prometheus.io/scrape": "true"}"#, "fd00::7")).unwrap();
        assert_eq!(get(&labels, "__address__"), Some("[fd00::7]:9080"));
        assert_eq!(get(&labels, "container"), Some("reviews"));
        assert_eq!(get(&labels, "__metrics_path__"), None);
    }
}

#[cfg(test)]
mod role_pod_tests {
    use super::*;

    /// Prometheus' documented role-pod targets: one per declared port, one per container
    /// without ports (bare IP), init containers flagged, all pod-level meta labels.
    #[test]
    fn one_target_per_port_and_per_portless_container() {
        let pod: Pod = serde_json::from_str(
            r#"{
  "metadata": {"name": "reviews-v1-abc", "namespace": "bookinfo", "uid": "u-1",
    "labels": {"app.kubernetes.io/name": "reviews"}, "annotations": {"prometheus.io/scrape": "true"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "reviews-v1", "uid": "r", "controller": true}]},
  "spec": {"nodeName": "node-1",
    "containers": [
      {"name": "reviews", "image": "reviews:1", "ports": [{"containerPort": 9080, "name": "http", "protocol": "TCP"}, {"containerPort": 9443, "protocol": "TCP"}]},
      {"name": "sidecar", "image": "s:1"}],
    "initContainers": [{"name": "istio-init", "image": "proxyv2:1"}]},
  "status": {"phase": "Running", "podIP": "fd00::7", "hostIP": "192.168.0.1",
    "conditions": [{"type": "Ready", "status": "False"}],
    "containerStatuses": [{"name": "reviews", "containerID": "containerd://abc", "image": "", "imageID": "", "ready": true, "restartCount": 0}]}
}"#,
        )
        .unwrap();
        let targets = pod_targets(&pod);
        let value = |t: &Labels, n: &str| {
            t.iter()
                .find(|(name, _)| name == &format!("{META}{n}") || name == n)
                .map(|(_, v)| v.clone())
        };
        let addresses: Vec<String> = targets
            .iter()
            .map(|t| value(t, "__address__").unwrap())
            .collect();
        assert_eq!(
            addresses,
            ["[fd00::7]:9080", "[fd00::7]:9443", "fd00::7", "fd00::7"]
        );
        let first = &targets[0];
        for (name, expected) in [
            ("namespace", "bookinfo"),
            ("pod_name", "reviews-v1-abc"),
            ("pod_uid", "u-1"),
            ("pod_ip", "fd00::7"),
            ("pod_host_ip", "192.168.0.1"),
            ("pod_node_name", "node-1"),
            ("pod_phase", "Running"),
            ("pod_ready", "false"),
            ("pod_label_app_kubernetes_io_name", "reviews"),
            ("pod_labelpresent_app_kubernetes_io_name", "true"),
            ("pod_annotation_prometheus_io_scrape", "true"),
            ("pod_annotationpresent_prometheus_io_scrape", "true"),
            ("pod_controller_kind", "ReplicaSet"),
            ("pod_controller_name", "reviews-v1"),
            ("pod_container_name", "reviews"),
            ("pod_container_image", "reviews:1"),
            ("pod_container_id", "containerd://abc"),
            ("pod_container_init", "false"),
            ("pod_container_port_name", "http"),
            ("pod_container_port_number", "9080"),
            ("pod_container_port_protocol", "TCP"),
        ] {
            assert_eq!(value(first, name).as_deref(), Some(expected), "{name}");
        }
        assert_eq!(value(&targets[1], "pod_container_port_name"), None);
        assert_eq!(
            value(&targets[2], "pod_container_name").as_deref(),
            Some("sidecar")
        );
        assert_eq!(value(&targets[2], "pod_container_port_number"), None);
        assert_eq!(
            value(&targets[3], "pod_container_init").as_deref(),
            Some("true")
        );
    }
}
