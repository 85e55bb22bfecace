//! `manifests/compose/` cannot drift from the code: the wasm part of its `envoy.yaml` (root id,
//! VM id, environment, plugin configuration, node metadata, the sink cluster) runs in the test
//! host and must be accepted and report with the token the compose sink accepts; the compose
//! sink config passes the sink's config check and writes to the compose Prometheus, whose
//! remote-write receiver is on; every bind-mounted file exists and every image is pinned.
//!
//! Nothing here starts Docker or Envoy (neither is available to the tests); the Envoy-specific
//! parts (V8 runtime, the listener) are checked for shape only.

#[allow(dead_code)] // Shared with manifests.rs, which also runs the client side.
#[path = "deploy/plugin_run.rs"]
mod plugin_run;
#[path = "waypoint_call/mod.rs"]
mod waypoint_call;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use meshtap_report::REPORT_PATH;
use meshtap_sink::SinkConfig;
use meshtap_tests::filter_wasm::FILE_NAME;
use meshtap_tests::host::{NodeInfo, VmStatus};
use serde_json::Value;

use plugin_run::{run_plugin, PluginRun, Side};

fn compose_dir() -> PathBuf {
    workspace().join("manifests/compose")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `path` with `.` and `..` resolved lexically (the file need not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where `cargo xtask build` puts the shipped (wasm-opt'ed) filter, with the default target dir.
fn built_filter() -> PathBuf {
    workspace().join("target/meshtap").join(FILE_NAME)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    yaml(&compose_dir().join("docker-compose.yaml"))
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_object(), "no compose service {name:?}");
    service
}

/// `host path → container path` of a service's bind mounts (paths relative to the compose dir).
fn bind_mounts(service: &Value) -> Vec<(PathBuf, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let spec = v.as_str()?;
            let (host, rest) = spec.split_once(':')?;
            if !host.starts_with('.') {
                return None; // a named volume
            }
            let target = rest.split(':').next().unwrap().to_owned();
            Some((compose_dir().join(host), target))
        })
        .collect()
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The Envoy bootstrap the compose Envoy runs with.
fn envoy_config() -> Value {
    let compose = compose();
    let envoy = service(&compose, "envoy");
    let command = string_list(&envoy["command"]);
    let config_path = command
        .windows(2)
        .find(|w| w[0] == "-c")
        .map(|w| w[1].clone())
        .expect("envoy -c FILE");
    let (host, _) = bind_mounts(envoy)
        .into_iter()
        .find(|(_, target)| *target == config_path)
        .unwrap_or_else(|| panic!("{config_path} is not mounted into envoy"));
    yaml(&host)
}

/// The `envoy.filters.http.wasm` plugin config of the first listener.
fn wasm_plugin_config(envoy: &Value) -> &Value {
    let listener = &envoy["static_resources"]["listeners"][0];
    let manager = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = manager["http_filters"].as_array().expect("http_filters");
    let wasm = filters
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .expect("the wasm filter is in the chain");
    assert_eq!(
        filters.last().unwrap()["name"],
        "envoy.filters.http.router",
        "the router is last"
    );
    assert_eq!(
        wasm["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    &wasm["typed_config"]["config"]
}

fn node_info(envoy: &Value) -> NodeInfo {
    let node = &envoy["node"];
    let mut info = NodeInfo {
        id: node["id"].as_str().unwrap().to_owned(),
        ..NodeInfo::default()
    };
    for (key, value) in node["metadata"].as_object().unwrap() {
        match value {
            Value::String(s) => {
                info.metadata.insert(key.clone(), s.clone());
            }
            Value::Object(labels) if key == "LABELS" => {
                for (k, v) in labels {
                    info.labels
                        .insert(k.clone(), v.as_str().unwrap().to_owned());
                }
            }
            other => panic!("node.metadata.{key}: unexpected {other}"),
        }
    }
    info
}

/// The compose sink's config, expanded with the sink service's environment.
fn sink_config() -> SinkConfig {
    let compose = compose();
    let sink = service(&compose, "sink");
    let command = string_list(&sink["command"]);
    assert_eq!(command[0], "--config");
    let (host, _) = bind_mounts(sink)
        .into_iter()
        .find(|(_, target)| *target == command[1])
        .unwrap_or_else(|| panic!("{} is not mounted into the sink", command[1]));
    let env = environment(sink);
    let text = std::fs::read_to_string(&host).unwrap();
    SinkConfig::from_yaml(&text, &|var| env.get(var).cloned())
        .unwrap_or_else(|e| panic!("{}: {e}", host.display()))
}

#[test]
fn the_envoy_wasm_config_runs_in_the_test_host_and_reports_to_the_compose_sink() {
    let envoy = envoy_config();
    let plugin = wasm_plugin_config(&envoy);
    assert_eq!(
        envoy["static_resources"]["listeners"][0]["traffic_direction"],
        "INBOUND"
    );
    let vm = &plugin["vm_config"];
    assert_eq!(vm["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(plugin["fail_open"], true);
    let configuration = &plugin["configuration"];
    assert_eq!(
        configuration["@type"],
        "type.googleapis.com/google.protobuf.StringValue"
    );
    let plugin_config = configuration["value"].as_str().unwrap().to_owned();
    let parsed: Value = serde_json::from_str(&plugin_config).expect("the configuration is JSON");
    let sink_cluster = parsed["sink_cluster"].as_str().unwrap();
    let env: Vec<(String, String)> = vm["environment_variables"]["key_values"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let sink = sink_config();
    let token = sink
        .ingest
        .tokens
        .first()
        .expect("the compose sink requires a token");

    let outcome = run_plugin(PluginRun {
        root_id: plugin["root_id"].as_str().unwrap(),
        vm_id: vm["vm_id"].as_str().unwrap(),
        plugin_config,
        env,
        node: Some(node_info(&envoy)),
        sink_cluster,
        accepted_token: Some(token),
        side: Side::Server,
    });
    assert!(
        outcome.complaints.is_empty(),
        "the filter complained: {:?}",
        outcome.complaints
    );
    assert!(outcome.statuses.iter().all(|s| *s == VmStatus::Running));
    assert!(
        !outcome.reports.is_empty(),
        "no report reached a receiver requiring the compose sink's token"
    );
    assert_eq!(outcome.requests_total(), 2.0);
    let proxy = outcome.reports[0].proxy.as_ref().unwrap();
    assert_eq!(proxy.namespace, outcome.node.metadata["NAMESPACE"]);
    assert_eq!(proxy.pod, outcome.node.metadata["NAME"]);
    assert_eq!(proxy.workload, outcome.node.metadata["WORKLOAD_NAME"]);
    assert!(outcome.posts.iter().all(|p| p.path == REPORT_PATH));
}

#[test]
fn the_envoy_clusters_point_at_the_compose_services() {
    let compose = compose();
    let envoy = envoy_config();
    let plugin = wasm_plugin_config(&envoy);
    let parsed: Value =
        serde_json::from_str(plugin["configuration"]["value"].as_str().unwrap()).unwrap();
    let clusters = envoy["static_resources"]["clusters"].as_array().unwrap();
    let address_of = |name: &str| {
        let cluster = clusters
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("envoy has no cluster {name:?}"));
        let socket = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["address"]["socket_address"];
        (
            socket["address"].as_str().unwrap().to_owned(),
            socket["port_value"].as_u64().unwrap(),
        )
    };
    // Reports: the sink service, on the port the sink listens on, with a matching authority.
    let (host, port) = address_of(parsed["sink_cluster"].as_str().unwrap());
    service(&compose, &host);
    assert_eq!(u64::from(sink_config().listen.port()), port);
    assert_eq!(parsed["sink_authority"], format!("{host}:{port}"));
    assert_eq!(parsed["sink_path"], REPORT_PATH);
    // Traffic: the listener's route goes to the upstream service.
    let route = &envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"];
    let (upstream, _) = address_of(route.as_str().unwrap());
    service(&compose, &upstream);
    // The module Envoy loads is the one `cargo xtask build` produces.
    let filename = plugin["vm_config"]["code"]["local"]["filename"]
        .as_str()
        .unwrap();
    let (host_wasm, _) = bind_mounts(service(&compose, "envoy"))
        .into_iter()
        .find(|(_, target)| target == filename)
        .unwrap_or_else(|| panic!("{filename} is not mounted into envoy"));
    assert_eq!(normalize(&host_wasm), built_filter());
}

#[test]
fn the_compose_sink_writes_to_the_compose_prometheus() {
    let compose = compose();
    let sink = sink_config();
    assert_eq!(sink.remote_write.len(), 1);
    let url = &sink.remote_write[0].url;
    let prometheus = service(&compose, "prometheus");
    assert_eq!(url.as_str(), "http://prometheus:9090/api/v1/write");
    assert!(
        string_list(&prometheus["command"]).contains(&"--web.enable-remote-write-receiver".into()),
        "Prometheus must accept remote-write"
    );
    // The sink image is built from the workspace with its Dockerfile.
    let build = &service(&compose, "sink")["build"];
    let context = compose_dir().join(build["context"].as_str().unwrap());
    let dockerfile = context.join(build["dockerfile"].as_str().unwrap());
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    assert!(text.contains("-p meshtap-sink"), "{}", dockerfile.display());
    assert!(text.contains("FROM gcr.io/distroless/static"));
    assert!(text.contains("USER 65532:65532"));
}

#[test]
fn every_mounted_file_exists_and_every_pulled_image_is_pinned() {
    let compose = compose();
    for (name, service) in compose["services"].as_object().unwrap() {
        for (host, _) in bind_mounts(service) {
            let host = normalize(&host);
            if host.starts_with(workspace().join("target")) {
                assert_eq!(
                    host,
                    built_filter(),
                    "{name}: only the built filter may come from target/"
                );
                continue;
            }
            assert!(host.exists(), "{name}: {} does not exist", host.display());
        }
        if service.get("build").is_some() {
            continue;
        }
        let image = service["image"].as_str().unwrap();
        let (_, tag) = image.rsplit_once(':').unwrap_or((image, ""));
        assert!(
            tag.chars().any(|c| c.is_ascii_digit()) && tag != "latest",
            "{name}: image {image} is not pinned to a version"
        );
    }
    let envoy_image = service(&compose, "envoy")["image"].as_str().unwrap();
    assert!(
        envoy_image.starts_with("envoyproxy/envoy:v1."),
        "{envoy_image}"
    );
}

#[test]
fn grafana_gets_prometheus_loki_and_istio_dashboards() {
    let compose = compose();
    let datasources =
        yaml(&compose_dir().join("grafana/provisioning/datasources/datasources.yaml"));
    let by_type: BTreeMap<String, Value> = datasources["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["type"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    assert_eq!(by_type["prometheus"]["url"], "http://prometheus:9090");
    assert_eq!(by_type["loki"]["url"], "http://loki:3100");
    service(&compose, "loki");
    // The dashboards' data-source input is bound to the provisioned Prometheus uid.
    let script =
        std::fs::read_to_string(compose_dir().join("grafana/fetch-dashboards.sh")).unwrap();
    let uid = by_type["prometheus"]["uid"].as_str().unwrap();
    assert!(
        script.contains(&format!("/{uid}/g")),
        "fetch-dashboards.sh binds {uid}"
    );
    for id in ["7639", "7636", "7630"] {
        assert!(script.contains(id), "Istio dashboard {id}");
    }
    // Grafana reads the folder the dashboards service fills.
    let provider = yaml(&compose_dir().join("grafana/provisioning/dashboards/istio.yaml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana_volumes = string_list(&service(&compose, "grafana")["volumes"]);
    assert!(
        grafana_volumes
            .iter()
            .any(|v| v.starts_with("dashboards:") && v.contains(path)),
        "{grafana_volumes:?}"
    );
}

#[test]
fn grafana_provisions_meshtaps_own_dashboards() {
    let compose = compose();
    let provider = yaml(&compose_dir().join("grafana/provisioning/dashboards/meshtap.yaml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let (host, _) = bind_mounts(service(&compose, "grafana"))
        .into_iter()
        .find(|(_, target)| target == path)
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    assert_eq!(normalize(&host), workspace().join("manifests/dashboards"));
    let dashboards = std::fs::read_dir(&host)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(dashboards, 4, "mesh, service, workload and ztunnel");
}
