//! `cargo xtask manifests`: renders a kustomization of `manifests/` with the real kustomize
//! (`kustomize build`, else `kubectl kustomize`) and pins the meshtap WasmPlugin to the image
//! `cargo xtask image` produced: `url: oci://<repository>@sha256:<manifest digest>` and
//! `sha256: <manifest digest>` (Istio compares `sha256` with the manifest digest for oci:// URLs).
//!
//! It edits nothing under `manifests/`; the rendered YAML goes to stdout or `--out FILE`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::image::{info_path, ImageInfo};
use crate::process::root;

pub fn command(args: &[String]) -> Result<()> {
    let mut dir = root().join("manifests");
    let mut out: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().context("--out FILE")?)),
            other if other.starts_with("--") => {
                bail!("manifests: unknown option {other:?} (known: --out FILE, then a kustomization directory)")
            }
            path => dir = PathBuf::from(path),
        }
    }
    let info_file = info_path();
    let info: ImageInfo =
        serde_json::from_slice(&std::fs::read(&info_file).with_context(|| {
            format!(
                "{} is missing: run `cargo xtask image` first",
                info_file.display()
            )
        })?)?;
    eprintln!("rendering {} with {}", dir.display(), info.pinned_url());
    let rendered = kustomize(&dir)?;
    let (yaml, pinned) = pin_wasm_plugins(&rendered, &info)?;
    if pinned == 0 {
        bail!(
            "{} renders no meshtap WasmPlugin with an oci:// url to pin",
            dir.display()
        );
    }
    match out {
        Some(path) => {
            std::fs::write(&path, yaml)?;
            eprintln!("wrote {} ({pinned} WasmPlugin pinned)", path.display());
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

/// Renders `dir` with whichever kustomize is installed.
fn kustomize(dir: &std::path::Path) -> Result<String> {
    let candidates: [(&str, &[&str]); 2] = [("kustomize", &["build"]), ("kubectl", &["kustomize"])];
    for (program, args) in candidates {
        let probe = Command::new(program)
            .args(if program == "kustomize" {
                &["version"][..]
            } else {
                &["kustomize", "--help"][..]
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.map(|s| s.success()).unwrap_or(false) {
            continue;
        }
        let output = Command::new(program).args(args).arg(dir).output()?;
        if !output.status.success() {
            bail!(
                "{program} {} {} failed:\n{}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        return Ok(String::from_utf8(output.stdout)?);
    }
    bail!("neither `kustomize` nor `kubectl` (with `kubectl kustomize`) is installed; install kustomize v5")
}

/// Sets `url` and `sha256` of every meshtap WasmPlugin pulling from `oci://`; returns the YAML
/// and how many were pinned.
fn pin_wasm_plugins(rendered: &str, info: &ImageInfo) -> Result<(String, usize)> {
    let mut documents = Vec::new();
    let mut pinned = 0;
    for document in serde_yaml::Deserializer::from_str(rendered) {
        let mut value = serde_yaml::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let is_plugin = value["kind"] == "WasmPlugin"
            && value["spec"]["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("oci://") && u.contains("meshtap-filter"));
        if is_plugin {
            let spec = value["spec"]
                .as_mapping_mut()
                .context("WasmPlugin without spec")?;
            spec.insert("url".into(), info.pinned_url().into());
            spec.insert("sha256".into(), info.digest_hex().into());
            pinned += 1;
        }
        documents.push(serde_yaml::to_string(&value)?);
    }
    Ok((documents.join("---\n"), pinned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_meshtap_plugin_is_pinned() {
        let info = ImageInfo {
            repository: "registry.example/meshtap-filter".into(),
            tag: "0.1.0".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            wasm_sha256: "cd".repeat(32),
        };
        let rendered = "\
kind: WasmPlugin
metadata: {name: meshtap}
spec: {url: 'oci://ghcr.io/meshtap/meshtap-filter:0.1.0', phase: STATS}
---
kind: WasmPlugin
metadata: {name: other}
spec: {url: 'oci://ghcr.io/someone/else:1'}
---
kind: Service
metadata: {name: x}
";
        let (yaml, pinned) = pin_wasm_plugins(rendered, &info).unwrap();
        assert_eq!(pinned, 1);
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0]["spec"]["url"],
            format!(
                "oci://registry.example/meshtap-filter@sha256:{}",
                "ab".repeat(32)
            )
            .as_str()
        );
        assert_eq!(docs[0]["spec"]["sha256"], "ab".repeat(32).as_str());
        assert_eq!(docs[0]["spec"]["phase"], "STATS");
        assert_eq!(docs[1]["spec"]["url"], "oci://ghcr.io/someone/else:1");
        assert!(docs[1]["spec"].get("sha256").is_none());
    }
}
