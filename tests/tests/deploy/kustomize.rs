//! A minimal kustomize subset for checking `manifests/` without a cluster: reads a
//! `kustomization.yaml` (only `resources`, `patches[].path` and `namespace`; any other key is
//! refused), resolves resources recursively (files and directories), applies patches as
//! strategic merges by kind and name, and sets the namespace of namespaced objects.
//!
//! The strategic-merge subset: maps merge recursively, lists whose items are maps with a `name`
//! merge item by item on `name`, every other value (including other lists) is replaced. It must
//! not grow into a general kustomize: when the manifests need more, they get checked with the real
//! tool (`kustomize_binary`), which the tests also compare against.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// The keys of `kustomization.yaml` this subset understands.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<PatchRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRef {
    path: String,
}

/// One rendered object and the file it came from.
#[derive(Clone, Debug)]
pub struct Object {
    pub source: PathBuf,
    pub value: Value,
}

impl Object {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
    /// `kind/namespace/name`, unique within a rendering.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind(),
            self.namespace().unwrap_or("-"),
            self.name()
        )
    }
}

/// The workspace's `manifests/` directory.
pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .join("manifests")
}

/// Every YAML document of a file, as JSON values (empty documents skipped).
pub fn read_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| format!("{}: {e}", path.display()))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Kinds that kustomize's namespace transformer leaves alone (cluster-scoped).
fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PriorityClass"
    )
}

/// Renders the kustomization in `dir`, or says which reference does not resolve.
pub fn build(dir: &Path) -> Result<Vec<Object>, String> {
    let file = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let kustomization: Kustomization =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if kustomization.api_version != "kustomize.config.k8s.io/v1beta1"
        || kustomization.kind != "Kustomization"
    {
        return Err(format!(
            "{}: not a kustomize.config.k8s.io/v1beta1 Kustomization",
            file.display()
        ));
    }
    let mut objects: Vec<Object> = Vec::new();
    for resource in &kustomization.resources {
        let path = dir.join(resource);
        if path.is_dir() {
            objects.extend(build(&path)?);
        } else if path.is_file() {
            for value in read_documents(&path)? {
                objects.push(Object {
                    source: path.clone(),
                    value,
                });
            }
        } else {
            return Err(format!(
                "{}: resource {resource:?} does not exist",
                file.display()
            ));
        }
    }
    for patch in &kustomization.patches {
        let path = dir.join(&patch.path);
        if !path.is_file() {
            return Err(format!(
                "{}: patch {:?} does not exist",
                file.display(),
                patch.path
            ));
        }
        for value in read_documents(&path)? {
            let patch_obj = Object {
                source: path.clone(),
                value,
            };
            let target = objects
                .iter_mut()
                .find(|o| o.kind() == patch_obj.kind() && o.name() == patch_obj.name())
                .ok_or_else(|| {
                    format!(
                        "{}: patch target {} {} not found among the resources",
                        path.display(),
                        patch_obj.kind(),
                        patch_obj.name()
                    )
                })?;
            strategic_merge(&mut target.value, &patch_obj.value);
        }
    }
    if let Some(namespace) = &kustomization.namespace {
        for object in &mut objects {
            set_namespace(&mut object.value, namespace);
        }
    }
    let mut keys: Vec<String> = objects.iter().map(Object::key).collect();
    keys.sort();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("{}: {} is defined twice", file.display(), w[0]));
    }
    Ok(objects)
}

fn set_namespace(value: &mut Value, namespace: &str) {
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    if !is_cluster_scoped(&kind) {
        value["metadata"]["namespace"] = Value::String(namespace.to_owned());
    }
    if kind == "ClusterRoleBinding" || kind == "RoleBinding" {
        if let Some(subjects) = value["subjects"].as_array_mut() {
            for subject in subjects {
                if subject["kind"] == "ServiceAccount" {
                    subject["namespace"] = Value::String(namespace.to_owned());
                }
            }
        }
    }
}

/// Merges `patch` into `base` (see the module doc for the rules).
pub fn strategic_merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) => strategic_merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(patch)) if all_named(base) && all_named(patch) => {
            for item in patch {
                match base.iter_mut().find(|b| b["name"] == item["name"]) {
                    Some(existing) => strategic_merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn all_named(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i["name"].is_string())
}

/// `kustomize build` or `kubectl kustomize`, whichever is installed.
pub fn kustomize_binary() -> Option<Vec<String>> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if works("kustomize", &["version"]) {
        Some(vec!["kustomize".into(), "build".into()])
    } else if works("kubectl", &["kustomize", "--help"]) {
        Some(vec!["kubectl".into(), "kustomize".into()])
    } else {
        None
    }
}

/// Renders `dir` with the real kustomize (`command` from `kustomize_binary`).
pub fn build_with(command: &[String], dir: &Path) -> Result<Vec<Value>, String> {
    let output = Command::new(&command[0])
        .args(&command[1..])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", command.join(" ")))?;
    if !output.status.success() {
        return Err(format!(
            "{} {} failed: {}",
            command.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}
