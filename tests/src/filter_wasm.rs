//! Finding the compiled meshtap filter for tests, benchmarks and the e2e suite: the
//! `MESHTAP_FILTER_WASM` variable, else the workspace's (or `CARGO_TARGET_DIR`'s) wasm32-wasip1
//! release output. Loading is cached per process.
//!
//! It never builds the filter: a missing file is an error that says how to build it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::host::FilterModule;

/// The file name cargo gives the filter.
pub const FILE_NAME: &str = "meshtap_filter.wasm";

/// How to build the filter, for error messages.
pub const BUILD_HINT: &str =
    "build it with `cargo build --release --target wasm32-wasip1 -p meshtap-filter` \
(or `cargo xtask build-filter`), or point MESHTAP_FILTER_WASM at a built meshtap_filter.wasm";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// Candidate locations, in order of preference.
pub fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(explicit) = std::env::var_os("MESHTAP_FILTER_WASM") {
        paths.push(PathBuf::from(explicit));
        return paths;
    }
    let release = Path::new("wasm32-wasip1").join("release").join(FILE_NAME);
    paths.push(workspace_root().join("target").join(&release));
    if let Some(target_dir) = std::env::var_os("CARGO_TARGET_DIR") {
        paths.push(PathBuf::from(target_dir).join(&release));
    }
    paths
}

/// The filter's path, or an error naming where it looked and how to build it.
pub fn locate() -> Result<PathBuf, String> {
    let candidates = candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "meshtap filter not found (looked at {}); {BUILD_HINT}",
                looked.join(", ")
            )
        })
}

/// The compiled filter, loaded once per process (without fuel metering). Panics with the build
/// hint when it is missing — meant for tests.
pub fn shared_module() -> Arc<FilterModule> {
    static MODULE: OnceLock<Arc<FilterModule>> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let path = locate().unwrap_or_else(|e| panic!("{e}"));
            FilterModule::load(&path, false).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .clone()
}
