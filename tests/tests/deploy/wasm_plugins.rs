//! The WasmPlugins as the filter sees them: each plugin's config and VM environment, run in
//! the host against a receiver requiring the install's ingest token; and the waypoint plugins
//! (ambient mode): attached only by `targetRefs` from their target's namespace, recording each
//! request once as `reporter="waypoint"`.

use std::collections::BTreeSet;

use meshtap_report::{POD_HEADER, REPORT_PATH};
use meshtap_tests::host::VmStatus;

use super::istio_crds::*;
use super::kustomize::Object;
use super::plugin_run::{self, run_plugin, PluginRun, Side};
use super::render;
use super::typed::istio;
use super::workloads::{self, find};

/// The WasmPlugin `name`, its plugin config as JSON and its VM environment.
pub(crate) fn wasm_plugin(
    objects: &[Object],
    name: &str,
) -> (Resource<WasmPluginSpec>, String, Vec<(String, String)>) {
    let plugin = istio::<WasmPluginSpec>(find(objects, "WasmPlugin", name)).unwrap();
    let config = serde_json::to_string(plugin.spec.plugin_config.as_ref().unwrap()).unwrap();
    let env = plugin
        .spec
        .vm_config
        .as_ref()
        .map(|vm| {
            vm.env
                .iter()
                .map(|e| {
                    assert_ne!(e.value_from, Some(EnvValueSource::Host), "{}", e.name);
                    (e.name.clone(), e.value.clone().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    (plugin, config, env)
}

/// Runs the WasmPlugin `name` of `plugins` on `side` in the host against a receiver requiring
/// the ingest token of `install`'s Secret; checks it ran cleanly, recorded one request per
/// worker and posted with the token. Returns the outcome for further checks.
pub(crate) fn run_wasm_plugin(
    install: &[Object],
    plugins: &[Object],
    name: &str,
    side: Side,
) -> plugin_run::PluginOutcome {
    let (plugin, plugin_config, env) = wasm_plugin(plugins, name);
    let token =
        workloads::secret_values(find(install, "Secret", "meshtap-sink"))["INGEST_TOKEN"].clone();
    let sink_cluster = plugin.spec.plugin_config.as_ref().unwrap()["sink_cluster"]
        .as_str()
        .unwrap()
        .to_owned();
    let root_id = plugin.spec.plugin_name.clone().unwrap();
    let outcome = run_plugin(PluginRun {
        root_id: &root_id,
        vm_id: &root_id,
        plugin_config,
        env,
        node: None,
        sink_cluster: &sink_cluster,
        accepted_token: Some(&token),
        side,
    });
    assert!(
        outcome.complaints.is_empty(),
        "{name} {side:?}: the filter complained: {:?}",
        outcome.complaints
    );
    assert!(
        outcome.statuses.iter().all(|s| *s == VmStatus::Running),
        "{name} {side:?}: {:?}",
        outcome.statuses
    );
    assert!(
        !outcome.reports.is_empty(),
        "{name} {side:?}: no report reached a receiver requiring the Secret's token"
    );
    assert_eq!(
        outcome.requests_total(),
        2.0,
        "{name} {side:?}: one request per worker is recorded"
    );
    let pod = &outcome.node.metadata["NAME"];
    for post in &outcome.posts {
        assert_eq!(post.path, REPORT_PATH);
        let header = |name: &str| {
            post.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("authorization"), Some(format!("Bearer {token}")));
        assert_eq!(
            header(POD_HEADER),
            Some(format!("{}/{pod}", outcome.node.metadata["NAMESPACE"]))
        );
    }
    outcome
}

/// The waypoint WasmPlugins: (kustomization, name, targetRef kind, targetRef group).
const WAYPOINT_PLUGINS: [(&str, &str, &str, &str); 3] = [
    (
        "ambient",
        "meshtap-waypoint",
        "Gateway",
        "gateway.networking.k8s.io",
    ),
    (
        "ambient",
        "meshtap-waypoint-tcp",
        "Gateway",
        "gateway.networking.k8s.io",
    ),
    ("ambient/service", "meshtap-reviews", "Service", ""),
];

#[test]
fn the_waypoint_plugins_attach_only_by_target_refs_from_their_targets_namespace() {
    let (mesh_wide, _, _) = wasm_plugin(&render("."), "meshtap");
    let mesh_wide_config = mesh_wide.spec.plugin_config.unwrap();
    for (dir, name, kind, group) in WAYPOINT_PLUGINS {
        let (plugin, _, _) = wasm_plugin(&render(dir), name);
        let spec = &plugin.spec;
        // Waypoints ignore selector policies; CLIENT never matches a waypoint chain.
        assert!(spec.selector.is_none(), "{name}: selector");
        assert!(spec.match_.is_empty(), "{name}: match");
        assert_eq!(spec.target_refs.len(), 1, "{name}");
        let target = &spec.target_refs[0];
        assert_eq!(
            (target.kind.as_str(), target.group.as_deref()),
            (kind, Some(group)),
            "{name}"
        );
        // Gateway and Service targetRefs only bind from the target's own namespace.
        assert!(
            target.namespace.is_none() || target.namespace == plugin.metadata.namespace,
            "{name}: cross-namespace targetRef"
        );
        assert_ne!(plugin.metadata.namespace.as_deref(), Some("istio-system"));
        assert_eq!(spec.phase, Some(PluginPhase::Stats), "{name}");
        assert_eq!(spec.fail_strategy, Some(FailStrategy::Open), "{name}");
        assert_eq!(spec.url, mesh_wide.spec.url, "{name}: same module");
        let config = spec.plugin_config.as_ref().unwrap();
        assert_eq!(config["reporter"], "waypoint", "{name}");
        let declared = match spec.plugin_type {
            Some(PluginType::Network) => "NETWORK",
            _ => "HTTP",
        };
        assert_eq!(
            config["type"], declared,
            "{name}: pluginConfig.type = spec.type"
        );
        for key in ["sink_cluster", "sink_authority", "ingest_token_env"] {
            assert_eq!(config[key], mesh_wide_config[key], "{name}: {key}");
        }
    }
}

#[test]
fn the_waypoint_plugin_configs_record_each_request_once_as_waypoint() {
    let install = render(".");
    for (dir, name, _, _) in WAYPOINT_PLUGINS {
        let plugins = render(dir);
        let (plugin, _, _) = wasm_plugin(&plugins, name);
        if plugin.spec.plugin_type == Some(PluginType::Network) {
            continue;
        }
        let outcome = run_wasm_plugin(&install, &plugins, name, Side::Waypoint);
        let reporters: BTreeSet<String> = outcome
            .reports
            .iter()
            .flat_map(|r| &r.families)
            .filter(|f| f.name == meshtap_report::schema::REQUESTS_TOTAL)
            .flat_map(|f| f.series.iter().map(|s| s.label_values[0].clone()))
            .collect();
        assert_eq!(
            reporters,
            BTreeSet::from(["waypoint".to_string()]),
            "{name}"
        );
    }
}
