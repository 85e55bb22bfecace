//! The sink's operations listener in the manifests: probes and scrape annotations point at the
//! `serve.ops_listen` port of the mounted sink.yaml, reports keep their own port, and the
//! AuthorizationPolicy admits scrapers' GETs there. Checks only; rendering belongs to
//! `kustomize`.

use serde_json::Value;

use super::istio_crds::AuthorizationPolicySpec;
use super::kustomize::Object;
use super::sink_config;
use super::typed::istio;
use super::workloads::{container, find};

/// Probes and Prometheus' scrape annotations reach the operations listener that the mounted
/// sink.yaml configures (answered while report clients fill the report listener), reports keep
/// their own port, and the AuthorizationPolicy lets scrapers' GETs through on it.
pub fn assert_probes_and_scrapes_use_the_ops_listener(objects: &[Object], what: &str) {
    let deployment = find(objects, "Deployment", "meshtap-sink");
    let config = sink_config(objects, deployment).unwrap_or_else(|e| panic!("{what}: {e}"));
    let ops = config
        .serve
        .ops_listen
        .unwrap_or_else(|| panic!("{what}: sink.yaml sets no serve.ops_listen"))
        .port();
    assert_ne!(ops, config.listen.port(), "{what}");
    let sink = container(deployment);
    let port_named = |name: &Value| {
        sink["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| &p["name"] == name)
            .unwrap_or_else(|| panic!("{what}: no container port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = port_named(&sink[probe]["httpGet"]["port"]);
        assert_eq!(port, u64::from(ops), "{what}: {probe}");
    }
    assert_eq!(
        port_named(&"http-reports".into()),
        u64::from(config.listen.port()),
        "{what}"
    );
    let annotations = &deployment.value["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], ops.to_string(), "{what}");
    assert_eq!(annotations["prometheus.io/path"], "/metrics", "{what}");
    let authz =
        istio::<AuthorizationPolicySpec>(find(objects, "AuthorizationPolicy", "meshtap-sink"))
            .unwrap();
    let scrapes_allowed = authz.spec.rules.iter().any(|rule| {
        rule.to.iter().any(|to| {
            let op = &to.operation;
            op.methods.iter().any(|m| m == "GET")
                && ["/metrics", "/healthz", "/readyz"]
                    .iter()
                    .all(|path| op.paths.iter().any(|p| p == path))
                && op.ports.contains(&ops.to_string())
        })
    });
    assert!(scrapes_allowed, "{what}: no rule admits GETs on port {ops}");
}
