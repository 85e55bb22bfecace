//! `manifests/` cannot rot: every kustomization resolves, every object parses into its
//! `k8s-openapi` type (or Istio's documented CRD fields) without losing a key, the hardening the
//! issue asks for is present, the sink configs pass the sink's own config check (with the values
//! their Secrets provide), and the WasmPlugin's `pluginConfig` and `vmConfig.env` are accepted by
//! the compiled filter in the test host, which then records requests and posts reports with the
//! Secret's ingest token.
//! The log-tailing (`log_files`) and Loki (`logs`) sections of the `logs-daemonset` and
//! `xscaler` overlays are validated whole by the sink, like the rest.

#[path = "deploy/istio_crds.rs"]
mod istio_crds;
#[path = "deploy/kustomize.rs"]
mod kustomize;
#[path = "deploy/ops_listener.rs"]
mod ops_listener;
#[path = "deploy/plugin_run.rs"]
mod plugin_run;
#[path = "deploy/typed.rs"]
mod typed;
#[path = "deploy/wasm_plugins.rs"]
mod wasm_plugins;
#[path = "waypoint_call/mod.rs"]
mod waypoint_call;
#[path = "deploy/workloads.rs"]
mod workloads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshtap_report::{POD_HEADER, REPORT_PATH};
use meshtap_sink::config::ConfigError;
use meshtap_sink::SinkConfig;
use serde_json::Value;

use istio_crds::*;
use kustomize::{build, manifests_dir, Object};
use ops_listener::assert_probes_and_scrapes_use_the_ops_listener;
use plugin_run::Side;
use typed::{check_typed, istio};
use wasm_plugins::{run_wasm_plugin, wasm_plugin};
use workloads::{container, container_env, find, host_path_mounts, mounted_sink_config, pod_spec};

/// Every kustomization of the repository, relative to `manifests/`.
const KUSTOMIZATIONS: [&str; 8] = [
    ".",
    "ambient",
    "ambient/service",
    "base",
    "istio",
    "istio/native-metrics-off",
    "overlays/logs-daemonset",
    "overlays/xscaler",
];

fn render(relative: &str) -> Vec<Object> {
    build(&manifests_dir().join(relative)).unwrap_or_else(|e| panic!("{e}"))
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "compose") {
                yaml_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "yaml")
            && path.file_name().is_some_and(|n| n != "kustomization.yaml")
        {
            found.push(path);
        }
    }
}

#[test]
fn every_kustomization_resolves_and_every_object_parses_into_its_type() {
    let mut used: BTreeSet<PathBuf> = BTreeSet::new();
    let mut failures = Vec::new();
    for relative in KUSTOMIZATIONS {
        let objects = render(relative);
        assert!(!objects.is_empty(), "{relative} renders nothing");
        for object in &objects {
            used.insert(object.source.clone());
            if let Err(e) = check_typed(object) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Patch files are used through `patches`; every other YAML file must be some resource.
    let mut files = Vec::new();
    yaml_files(&manifests_dir(), &mut files);
    let orphans: Vec<_> = files
        .iter()
        .filter(|f| !used.contains(*f) && !is_patch(f))
        .collect();
    assert!(
        orphans.is_empty(),
        "files no kustomization uses: {orphans:?}"
    );
}

fn is_patch(file: &Path) -> bool {
    let text = std::fs::read_to_string(file.parent().unwrap().join("kustomization.yaml"))
        .unwrap_or_default();
    let name = file.file_name().unwrap().to_string_lossy();
    text.contains(&format!("path: {name}"))
}

#[test]
fn the_kustomize_subset_renders_like_the_real_kustomize() {
    let Some(command) = kustomize::kustomize_binary() else {
        eprintln!("SKIPPED: neither `kustomize` nor `kubectl kustomize` is installed");
        return;
    };
    for relative in KUSTOMIZATIONS {
        let dir = manifests_dir().join(relative);
        let ours: BTreeMap<String, Value> = render(relative)
            .into_iter()
            .map(|o| (o.key(), o.value))
            .collect();
        let theirs: BTreeMap<String, Value> = kustomize::build_with(&command, &dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|value| {
                let o = Object {
                    source: dir.clone(),
                    value,
                };
                (o.key(), o.value)
            })
            .collect();
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{relative}: objects differ"
        );
        for (key, value) in &ours {
            assert_eq!(value, &theirs[key], "{relative}: {key} differs");
        }
    }
}

#[test]
fn the_sink_deployment_is_hardened_and_highly_available() {
    let objects = render("base");
    let deployment = find(&objects, "Deployment", "meshtap-sink");
    assert_eq!(deployment.namespace(), Some("meshtap-system"));
    assert_eq!(deployment.value["spec"]["replicas"], 2);
    let pod = pod_spec(deployment);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "meshtap-sink");
    let sink = container(deployment);
    // Released together: the image tag is the workspace version.
    assert_eq!(
        sink["image"],
        format!("ghcr.io/meshtap/meshtap-sink:{}", env!("CARGO_PKG_VERSION"))
    );
    let security = &sink["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(security["capabilities"].get("add").is_none());
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(sink[probe]["httpGet"]["path"].is_string(), "{probe}");
    }
    assert_eq!(sink["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(sink["livenessProbe"]["httpGet"]["path"], "/healthz");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                sink["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource}"
            );
        }
    }
    // Graceful termination covers the sink's flush.
    let config = sink_config(&objects, deployment).expect("the base sink config is valid");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > config.shutdown_timeout.get().as_secs(),
        "terminationGracePeriodSeconds {grace} must exceed shutdown_timeout {:?}",
        config.shutdown_timeout.get()
    );
    assert_spool_fits(&config, deployment);
    // The PodDisruptionBudget keeps one of them.
    let pdb = find(&objects, "PodDisruptionBudget", "meshtap-sink");
    assert_eq!(pdb.value["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb.value["spec"]["selector"]["matchLabels"],
        deployment.value["spec"]["selector"]["matchLabels"]
    );
}

/// The config's spool directory is a writable volume of the workload, larger than
/// `spool.max_bytes` (a full emptyDir gets the pod evicted).
fn assert_spool_fits(config: &SinkConfig, workload: &Object) {
    let spool = config.spool.as_ref().expect("the sink config spools");
    let dir = spool.dir.to_str().unwrap();
    let mounts = container(workload)["volumeMounts"].as_array().unwrap();
    let mount = mounts
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{dir} is not mounted"));
    assert_ne!(mount["readOnly"], true, "the spool must be writable");
    let volume = pod_spec(workload)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the spool's volume");
    let size = volume["emptyDir"]["sizeLimit"]
        .as_str()
        .expect("a sizeLimit");
    let mib: u64 = size
        .strip_suffix("Mi")
        .expect("a size in Mi")
        .parse()
        .unwrap();
    assert!(
        mib << 20 > spool.max_bytes.get(),
        "sizeLimit {size} must exceed spool.max_bytes {}",
        spool.max_bytes
    );
}

#[test]
fn rbac_only_reads_pods_and_endpointslices() {
    let objects = render("base");
    let role = find(&objects, "ClusterRole", "meshtap-sink");
    let rules: BTreeSet<(String, String, Vec<String>)> = role.value["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let verbs: Vec<String> = serde_json::from_value(rule["verbs"].clone()).unwrap();
            let groups: Vec<String> = serde_json::from_value(rule["apiGroups"].clone()).unwrap();
            let resources: Vec<String> = serde_json::from_value(rule["resources"].clone()).unwrap();
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources
                    .clone()
                    .into_iter()
                    .map(move |r| (g.clone(), r, verbs.clone()))
            })
        })
        .collect();
    let read = vec!["get".to_string(), "list".into(), "watch".into()];
    let expected: BTreeSet<_> = [
        (String::new(), "pods".to_string(), read.clone()),
        ("discovery.k8s.io".into(), "endpointslices".into(), read),
    ]
    .into();
    assert_eq!(rules, expected);
    let binding = find(&objects, "ClusterRoleBinding", "meshtap-sink");
    assert_eq!(binding.value["roleRef"]["name"], "meshtap-sink");
    assert_eq!(
        binding.value["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "meshtap-sink", "namespace": "meshtap-system"}])
    );
}

#[test]
fn services_destination_rule_and_authorization_policy_fit_the_report_path() {
    let objects = render("base");
    let deployment = find(&objects, "Deployment", "meshtap-sink");
    let pod_labels = &deployment.value["spec"]["template"]["metadata"]["labels"];
    let service = find(&objects, "Service", "meshtap-sink");
    let members = find(&objects, "Service", "meshtap-sink-members");
    for svc in [service, members] {
        for (key, value) in svc.value["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &pod_labels[key],
                value,
                "{} selects the sink pods",
                svc.key()
            );
        }
        assert_eq!(svc.value["spec"]["ports"][0]["port"], 9091);
        // Istio detects the protocol from the port name.
        assert!(svc.value["spec"]["ports"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("http"));
    }
    assert_eq!(members.value["spec"]["clusterIP"], "None");
    assert!(service.value["spec"].get("clusterIP").is_none());

    let rule =
        istio::<DestinationRuleSpec>(find(&objects, "DestinationRule", "meshtap-sink")).unwrap();
    assert_eq!(
        rule.spec.host,
        "meshtap-sink.meshtap-system.svc.cluster.local"
    );
    let policy = rule.spec.traffic_policy.unwrap();
    let hash = policy.load_balancer.unwrap().consistent_hash.unwrap();
    assert_eq!(hash.http_header_name.as_deref(), Some(POD_HEADER));
    assert_eq!(policy.tls.unwrap().mode, TlsMode::IstioMutual);

    let authz =
        istio::<AuthorizationPolicySpec>(find(&objects, "AuthorizationPolicy", "meshtap-sink"))
            .unwrap();
    assert_eq!(authz.spec.action, Some(AuthzAction::Allow));
    assert_eq!(
        authz.spec.selector.unwrap().match_labels["app"],
        pod_labels["app"]
    );
    let mut posts_allowed = 0;
    for rule in &authz.spec.rules {
        let may_post = rule.to.iter().any(|to| {
            let op = &to.operation;
            (op.methods.is_empty() || op.methods.iter().any(|m| m == "POST"))
                && (op.paths.is_empty() || op.paths.iter().any(|p| p == REPORT_PATH))
        }) || rule.to.is_empty();
        if may_post {
            posts_allowed += 1;
            assert!(
                !rule.from.is_empty()
                    && rule
                        .from
                        .iter()
                        .all(|f| f.source.principals == ["*".to_string()]),
                "a rule lets non-mesh callers post reports: {rule:?}"
            );
        }
    }
    assert_eq!(posts_allowed, 1, "exactly one rule admits report posts");
}

#[test]
fn probes_and_scrapes_use_the_ops_listener() {
    assert_probes_and_scrapes_use_the_ops_listener(&render("base"), "base");
    assert_probes_and_scrapes_use_the_ops_listener(&render("overlays/xscaler"), "xscaler");
}

/// The sink config a workload mounts, expanded with the environment its Secrets give it.
fn sink_config(objects: &[Object], workload: &Object) -> Result<SinkConfig, ConfigError> {
    let text = mounted_sink_config(objects, workload);
    let env = container_env(objects, workload);
    SinkConfig::from_yaml(&text, &|var| env.get(var).cloned())
}

/// A log-tailing sink config as the sink reads it (expanded with the workload's environment and
/// validated whole), as a YAML tree.
fn log_tailing_config(objects: &[Object], workload: &Object, what: &str) -> serde_yaml::Value {
    let config =
        sink_config(objects, workload).unwrap_or_else(|e| panic!("{what}: sink.yaml refused: {e}"));
    serde_yaml::to_value(&config).unwrap()
}

#[test]
fn the_base_sink_config_passes_check_config_with_the_secret_values() {
    let objects = render("base");
    let config = sink_config(&objects, find(&objects, "Deployment", "meshtap-sink"))
        .unwrap_or_else(|e| panic!("manifests/base/configmap.yaml: {e}"));
    let secret = workloads::secret_values(find(&objects, "Secret", "meshtap-sink"));
    assert_eq!(config.listen.port(), 9091);
    assert_eq!(config.ingest.tokens, vec![secret["INGEST_TOKEN"].clone()]);
    assert_eq!(config.remote_write.len(), 1);
    assert_eq!(
        config.remote_write[0].url.as_str(),
        secret["REMOTE_WRITE_URL"]
    );
}

#[test]
fn the_wasm_plugin_is_a_pinned_fail_open_stats_plugin_aimed_at_the_sink() {
    let objects = render(".");
    let (plugin, _, _) = wasm_plugin(&objects, "meshtap");
    assert_eq!(plugin.metadata.namespace.as_deref(), Some("istio-system"));
    let spec = &plugin.spec;
    assert!(
        spec.selector.is_none() && spec.target_refs.is_empty(),
        "mesh-wide"
    );
    assert_eq!(
        spec.url,
        format!(
            "oci://ghcr.io/meshtap/meshtap-filter:{}",
            env!("CARGO_PKG_VERSION")
        ),
        "the source pulls the release tag; `cargo xtask manifests` pins the digest"
    );
    assert!(
        spec.sha256.is_none(),
        "a sha256 in the source would pin the tag to one build"
    );
    assert_eq!(spec.phase, Some(PluginPhase::Stats));
    assert_eq!(spec.fail_strategy, Some(FailStrategy::Open));
    assert_eq!(spec.plugin_type, Some(PluginType::Http));
    let config = spec.plugin_config.as_ref().unwrap();
    // The cluster and authority Istio builds for the sink's Service.
    let service = find(&objects, "Service", "meshtap-sink");
    let host = format!(
        "{}.{}.svc.cluster.local",
        service.name(),
        service.namespace().unwrap()
    );
    let port = &service.value["spec"]["ports"][0]["port"];
    assert_eq!(config["sink_cluster"], format!("outbound|{port}||{host}"));
    assert_eq!(config["sink_authority"], format!("{host}:{port}"));
    assert_eq!(config["sink_path"], REPORT_PATH);
}

#[test]
fn the_wasm_plugin_config_is_accepted_by_the_filter_and_reports_with_the_secret_token() {
    let objects = render(".");
    for side in [Side::Client, Side::Server] {
        run_wasm_plugin(&objects, &objects, "meshtap", side);
    }
}

#[test]
fn the_optional_telemetry_turns_istio_native_metrics_off() {
    let objects = render("istio/native-metrics-off");
    let telemetry = istio::<TelemetrySpec>(find(&objects, "Telemetry", "mesh-default")).unwrap();
    assert_eq!(
        telemetry.metadata.namespace.as_deref(),
        Some("istio-system")
    );
    assert!(telemetry.spec.selector.is_none(), "mesh-wide");
    let metrics = &telemetry.spec.metrics[0];
    assert_eq!(metrics.providers[0].name, "prometheus");
    let all_off = metrics.overrides.iter().any(|o| {
        o.disabled == Some(true)
            && o.match_.as_ref().is_some_and(|m| {
                m.metric == Some(IstioMetric::AllMetrics)
                    && m.mode == Some(WorkloadMode::ClientAndServer)
            })
    });
    assert!(all_off, "{:?}", metrics.overrides);
    // Not part of the default install: doubling is the user's choice.
    assert!(render(".").iter().all(|o| o.kind() != "Telemetry"));
}

#[test]
fn the_logs_daemonset_tails_pod_logs_read_only_and_keeps_positions_on_the_node() {
    let objects = render("overlays/logs-daemonset");
    let daemonset = find(&objects, "DaemonSet", "meshtap-logs");
    assert_eq!(daemonset.namespace(), Some("meshtap-system"));
    let mounts = host_path_mounts(daemonset);
    assert!(
        mounts.contains(&("/var/log/pods".into(), "/var/log/pods".into(), true)),
        "{mounts:?}"
    );
    let (positions_host, positions_mount, read_only) = mounts
        .iter()
        .find(|(host, ..)| host != "/var/log/pods")
        .cloned()
        .expect("a positions hostPath");
    assert!(!read_only && positions_host.starts_with("/var/lib/"));
    let security = &container(daemonset)["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        pod_spec(daemonset)["tolerations"],
        serde_json::json!([{"operator": "Exists"}]),
        "runs on every node"
    );
    // The config keeps its positions inside that mount, tails the pod log directory and pushes
    // to the Secret's Loki.
    let config = log_tailing_config(&objects, daemonset, "logs-daemonset");
    let positions = config["log_files"]["positions_file"].as_str().unwrap();
    assert!(positions.starts_with(&format!("{positions_mount}/")));
    let include = config["log_files"]["include"].as_str().unwrap();
    assert!(include.starts_with("/var/log/pods/"), "{include}");
    let loki = workloads::secret_values(find(&objects, "Secret", "meshtap-logs"));
    assert_eq!(
        config["logs"][0]["url"].as_str(),
        Some(loki["LOKI_URL"].as_str())
    );
    let ingest = &config["ingest"]["tokens"][0];
    assert!(
        ingest.as_str().is_some_and(|t| !t.is_empty()),
        "stray posts need a token"
    );
    // The base sink is still there and unchanged.
    sink_config(&objects, find(&objects, "Deployment", "meshtap-sink")).unwrap();
}

#[test]
fn the_xscaler_overlay_writes_metrics_and_logs_to_the_hosted_endpoints() {
    let objects = render("overlays/xscaler");
    let xscaler = workloads::secret_values(find(&objects, "Secret", "meshtap-xscaler"));
    let region = &xscaler["XSCALER_REGION"];

    let deployment = find(&objects, "Deployment", "meshtap-sink");
    let config =
        sink_config(&objects, deployment).unwrap_or_else(|e| panic!("xscaler sink.yaml: {e}"));
    assert_eq!(config.remote_write.len(), 1);
    let remote = &config.remote_write[0];
    assert_eq!(
        remote.url.as_str(),
        format!("https://{region}.xscalerlabs.com/api/v1/push")
    );
    let auth = remote.basic_auth.as_ref().expect("basic auth");
    assert_eq!(auth.username, xscaler["XSCALER_METRICS_INSTANCE_ID"]);
    assert_eq!(auth.password, xscaler["XSCALER_TOKEN"]);
    assert_spool_fits(&config, deployment);

    let daemonset = find(&objects, "DaemonSet", "meshtap-logs");
    let config = log_tailing_config(&objects, daemonset, "xscaler logs");
    let logs = &config["logs"][0];
    assert_eq!(
        logs["url"].as_str().unwrap(),
        format!("https://logs-{region}.xscalerlabs.com/loki/api/v1/push")
    );
    assert_eq!(
        logs["basic_auth"]["username"].as_str().unwrap(),
        xscaler["XSCALER_LOGS_INSTANCE_ID"]
    );
    assert_eq!(
        logs["basic_auth"]["password"].as_str().unwrap(),
        xscaler["XSCALER_TOKEN"]
    );

    // The overlay is a complete install: the filter comes with it.
    find(&objects, "WasmPlugin", "meshtap");
}
