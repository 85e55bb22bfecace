//! Reading rendered Kubernetes objects the way the kubelet would wire them: a workload's pod
//! template, the environment its container gets (Secrets through `envFrom`, literal and
//! downward-API `env`), and the sink config file it mounts from a ConfigMap.
//!
//! Lookups that fail panic with what was missing: these helpers serve tests only.

use std::collections::BTreeMap;

use serde_json::Value;

use super::kustomize::Object;

/// The object of `kind` named `name`; panics when absent.
pub fn find<'a>(objects: &'a [Object], kind: &str, name: &str) -> &'a Object {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name:?} in the rendering"))
}

/// The pod spec of a Deployment or DaemonSet.
pub fn pod_spec(workload: &Object) -> &Value {
    &workload.value["spec"]["template"]["spec"]
}

/// The first container of a workload.
pub fn container(workload: &Object) -> &Value {
    &pod_spec(workload)["containers"][0]
}

/// A Secret's values (`stringData`; `data` would be base64 and is not used by meshtap).
pub fn secret_values(secret: &Object) -> BTreeMap<String, String> {
    assert!(
        secret.value.get("data").is_none(),
        "{}: use stringData",
        secret.key()
    );
    secret.value["stringData"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The environment of a workload's container: `envFrom` Secrets (in order, later wins), then
/// `env` (literal values; downward-API fields get `<fieldPath>` as a stand-in value).
pub fn container_env(objects: &[Object], workload: &Object) -> BTreeMap<String, String> {
    let container = container(workload);
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_array().into_iter().flatten() {
        let name = source["secretRef"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: envFrom without secretRef.name", workload.key()));
        env.extend(secret_values(find(objects, "Secret", name)));
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env var name").to_owned();
        let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(path)) => format!("<{path}>"),
            other => panic!("{}: env {name} has no value: {other:?}", workload.key()),
        };
        env.insert(name, value);
    }
    env
}

/// The sink config a workload runs with: the file named by `--config`, read from the ConfigMap
/// volume mounted at its directory.
pub fn mounted_sink_config(objects: &[Object], workload: &Object) -> String {
    let container = container(workload);
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no args", workload.key()))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config_path = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1])
        .unwrap_or_else(|| panic!("{}: no --config FILE in {args:?}", workload.key()));
    let (dir, file) = config_path
        .rsplit_once('/')
        .expect("an absolute config path");
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", workload.key()));
    let volume = pod_spec(workload)["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("{}: volume {} missing", workload.key(), mount["name"]));
    let config_map = volume["configMap"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {dir} is not a ConfigMap volume", workload.key()));
    find(objects, "ConfigMap", config_map).value["data"][file]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {config_map} has no key {file}"))
        .to_owned()
}

/// A hostPath volume of a workload and the container's mount of it: `(host path, mount path,
/// read-only)`.
pub fn host_path_mounts(workload: &Object) -> Vec<(String, String, bool)> {
    let volumes = pod_spec(workload)["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    container(workload)["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let volume = volumes.iter().find(|v| v["name"] == m["name"])?;
            let host = volume["hostPath"]["path"].as_str()?;
            Some((
                host.to_owned(),
                m["mountPath"].as_str().unwrap_or_default().to_owned(),
                m["readOnly"].as_bool().unwrap_or(false),
            ))
        })
        .collect()
}
