//! `cargo xtask image`: packs the shipped filter as an OCI image that Istio's WasmPlugin can pull.
//!
//! Format: the *compat* variant of the Wasm image specification (solo-io/wasm `spec-compat.md`),
//! which Istio's image fetcher reads first — an OCI image manifest with exactly one layer of media
//! type `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`, and the manifest
//! annotation `module.wasm.image/variant=compat`. Standard registries and tools (crane, oras,
//! skopeo, docker) handle it, unlike the *oci* variant's custom media types.
//!
//! Output: an OCI image-layout directory and the same layout as a tar (`oci-archive`), both
//! byte-for-byte reproducible for a given `.wasm` (zero timestamps, fixed modes, no gzip name),
//! plus `image.json` (repository, tag, manifest digest, wasm sha256) for `cargo xtask manifests`.
//! It never pushes: it prints the commands that do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::build::{self, artifact_dir, done, shipped_filter, step};

/// Where the published image lives unless `--repository` says otherwise.
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/meshtap/meshtap-filter";

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file Istio extracts from the layer.
const PLUGIN_FILE: &str = "plugin.wasm";

/// What `image` produced; saved as `target/meshtap/image.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    pub repository: String,
    pub tag: String,
    /// `sha256:<hex>` of the image manifest: the registry digest, and what Istio checks a
    /// WasmPlugin's `sha256` against for `oci://` URLs.
    pub digest: String,
    /// Hex sha256 of `plugin.wasm` itself (what `sha256` means for http(s):// and file:// URLs).
    pub wasm_sha256: String,
}

impl ImageInfo {
    /// `oci://<repository>@sha256:<hex>`, the pinned WasmPlugin URL.
    pub fn pinned_url(&self) -> String {
        format!("oci://{}@{}", self.repository, self.digest)
    }

    /// The manifest digest without its `sha256:` prefix.
    pub fn digest_hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// `target/meshtap/image.json`.
pub fn info_path() -> PathBuf {
    artifact_dir().join("image.json")
}

fn layout_dir() -> PathBuf {
    artifact_dir().join("oci-layout")
}

fn archive_path() -> PathBuf {
    artifact_dir().join("meshtap-filter-oci.tar")
}

pub fn command(args: &[String]) -> Result<()> {
    let mut repository = DEFAULT_REPOSITORY.to_owned();
    let mut tag = env!("CARGO_PKG_VERSION").to_owned();
    let mut rebuild = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repository" => repository = args.next().context("--repository REPO")?.clone(),
            "--tag" => tag = args.next().context("--tag TAG")?.clone(),
            "--no-build" => rebuild = false,
            other => {
                bail!("image: unknown option {other:?} (known: --repository, --tag, --no-build)")
            }
        }
    }
    let total = if rebuild { 3 } else { 1 };
    if rebuild {
        build::build_filter_artifact(total)?;
    }
    let wasm_path = shipped_filter();
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        format!(
            "{} is missing: run `cargo xtask build` (or drop --no-build)",
            wasm_path.display()
        )
    })?;
    step(total, total, "packing the OCI image (Wasm compat variant)");
    let started = Instant::now();
    let info = write_image(&wasm, &repository, &tag)?;
    done(started);
    std::fs::write(info_path(), serde_json::to_vec_pretty(&info)?)?;

    let reference = format!("{repository}:{tag}");
    let layout = layout_dir();
    let archive = archive_path();
    println!("wasm sha256:  {}", info.wasm_sha256);
    println!("image digest: {}", info.digest);
    println!("pinned url:   {}", info.pinned_url());
    println!("layout:       {}", layout.display());
    println!("archive:      {}", archive.display());
    println!("push with one of:");
    println!("  crane push {} {reference}", layout.display());
    println!(
        "  oras cp --from-oci-layout {}:{tag} {reference}",
        layout.display()
    );
    println!(
        "  skopeo copy --preserve-digests oci-archive:{} docker://{reference}",
        archive.display()
    );
    println!("then `cargo xtask manifests` renders the WasmPlugin pinned to this digest.");
    Ok(())
}

/// `sha256:<hex>` of `bytes`.
fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar of `entries` with reproducible headers (mtime 0, root-owned, mode 0644).
fn reproducible_tar(entries: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, *data)?;
    }
    Ok(builder.into_inner()?)
}

/// Writes the layout directory and the archive; returns the digests.
fn write_image(wasm: &[u8], repository: &str, tag: &str) -> Result<ImageInfo> {
    let layer_tar = reproducible_tar(&[(PLUGIN_FILE, wasm)])?;
    let layer = gzip(&layer_tar)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer_tar)]},
        "config": {},
    }))?;
    let manifest = manifest(&config, &layer, tag)?;
    let manifest_digest = digest(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }))?;
    let oci_layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();

    let blob_name = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    write_layout(&[
        ("oci-layout".into(), &oci_layout),
        ("index.json".into(), &index),
        (blob_name(&digest(&config)), &config),
        (blob_name(&digest(&layer)), &layer),
        (blob_name(&manifest_digest), &manifest),
    ])?;
    Ok(ImageInfo {
        repository: repository.to_owned(),
        tag: tag.to_owned(),
        digest: manifest_digest,
        wasm_sha256: hex(&Sha256::digest(wasm)),
    })
}

/// `data` gzipped with no timestamp and the best compression (the same bytes every build).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

/// The image manifest of one `config` and one `layer` blob, annotated as a compat wasm image.
fn manifest(config: &[u8], layer: &[u8], tag: &str) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest(layer), "size": layer.len()}],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": "meshtap-filter",
            "org.opencontainers.image.source": "https://github.com/meshtap/meshtap",
            "org.opencontainers.image.version": tag,
        },
    }))?)
}

/// Replaces the layout directory with `files` and writes them as the archive too.
fn write_layout(files: &[(String, &[u8])]) -> Result<()> {
    let layout = layout_dir();
    if layout.exists() {
        std::fs::remove_dir_all(&layout)?;
    }
    for (name, data) in files {
        write_file(&layout.join(name), data)?;
    }
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    std::fs::write(archive_path(), reproducible_tar(&entries)?)?;
    Ok(())
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_layer_is_a_gzipped_tar_holding_plugin_wasm_and_is_reproducible() {
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        let tar = reproducible_tar(&[(PLUGIN_FILE, &wasm)]).unwrap();
        assert_eq!(tar, reproducible_tar(&[(PLUGIN_FILE, &wasm)]).unwrap());
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str(), Some(PLUGIN_FILE));
        assert_eq!(entry.header().mtime().unwrap(), 0);
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content, wasm);
        assert!(entries.next().is_none(), "exactly one file");
    }

    #[test]
    fn digests_are_prefixed_lowercase_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
