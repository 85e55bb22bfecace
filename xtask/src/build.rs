//! `cargo xtask build`: the release artifacts — the filter `.wasm` as it ships (optimised by
//! binaryen's `wasm-opt` when it can be found or installed from npm, sizes measured before and
//! after) and the `meshtap-sink` binary.
//!
//! It only runs cargo and `wasm-opt` and copies files; it never changes what cargo built in place.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::process::{self, root, run, target_dir};

/// The binaryen release `npm install` fetches when `wasm-opt` is not on the PATH.
const BINARYEN_NPM: &str = "binaryen@132.0.0";

/// Features the filter's code may use (the Rust wasm32-wasip1 defaults), all supported by
/// Envoy's V8; `wasm-opt` must neither reject nor introduce anything beyond them.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The filter as it ships.
pub struct FilterArtifact {
    /// `target/meshtap/meshtap_filter.wasm`.
    pub path: PathBuf,
    /// Size of cargo's output.
    pub cargo_bytes: u64,
    /// Size of the shipped file.
    pub final_bytes: u64,
    /// The `wasm-opt` that optimised it, if any.
    pub optimised_by: Option<String>,
}

/// Where the shipped artifacts go.
pub fn artifact_dir() -> PathBuf {
    target_dir().join("meshtap")
}

/// The shipped filter's path (what the compose demo mounts and the image packs).
pub fn shipped_filter() -> PathBuf {
    artifact_dir().join("meshtap_filter.wasm")
}

/// Prints one progress line: `[step/total] what`.
pub fn step(number: usize, total: usize, what: &str) {
    eprintln!("\x1b[1;36m[{number}/{total}]\x1b[0m {what}");
}

/// Prints how long a step took.
pub fn done(started: Instant) {
    eprintln!("      done in {:.1}s", started.elapsed().as_secs_f64());
}

pub fn command(args: &[String]) -> Result<()> {
    let mut with_sink = true;
    for arg in args {
        match arg.as_str() {
            "--filter-only" => with_sink = false,
            other => bail!("build: unknown option {other:?} (known: --filter-only)"),
        }
    }
    let total = if with_sink { 3 } else { 2 };
    let filter = build_filter_artifact(total)?;
    report_filter(&filter);
    if with_sink {
        step(3, total, "building meshtap-sink (release)");
        let started = Instant::now();
        run(process::cargo().args(["build", "--release", "-p", "meshtap-sink"]))?;
        done(started);
        let sink = target_dir().join("release/meshtap-sink");
        let size = std::fs::metadata(&sink)
            .with_context(|| format!("{} missing after the build", sink.display()))?
            .len();
        println!("sink:   {} ({size} bytes)", sink.display());
    }
    Ok(())
}

fn report_filter(filter: &FilterArtifact) {
    match &filter.optimised_by {
        Some(tool) => println!(
            "filter: {} ({} bytes; cargo output {} bytes, {:.1}% smaller with {tool})",
            filter.path.display(),
            filter.final_bytes,
            filter.cargo_bytes,
            100.0 * (1.0 - filter.final_bytes as f64 / filter.cargo_bytes as f64)
        ),
        None => println!(
            "filter: {} ({} bytes; not optimised: wasm-opt unavailable)",
            filter.path.display(),
            filter.final_bytes
        ),
    }
}

/// Steps 1 and 2 of `build`: compile the filter, then optimise it into `shipped_filter()`.
pub fn build_filter_artifact(total: usize) -> Result<FilterArtifact> {
    step(1, total, "building the filter (release, wasm32-wasip1)");
    let started = Instant::now();
    let cargo_output = process::build_filter()?;
    done(started);
    let cargo_bytes = std::fs::metadata(&cargo_output)?.len();
    std::fs::create_dir_all(artifact_dir())?;
    let shipped = shipped_filter();

    step(2, total, "optimising the filter with wasm-opt");
    let started = Instant::now();
    let optimised_by = match find_wasm_opt() {
        Some(tool) => {
            let mut cmd = Command::new(&tool);
            cmd.arg("-O3")
                .args(WASM_FEATURES)
                .args(["--strip-debug", "--strip-producers"])
                .arg(&cargo_output)
                .arg("-o")
                .arg(&shipped);
            run(&mut cmd)?;
            Some(tool.display().to_string())
        }
        None => {
            eprintln!(
                "      wasm-opt not found and could not be installed: shipping cargo's output"
            );
            std::fs::copy(&cargo_output, &shipped)?;
            None
        }
    };
    done(started);
    let bytes = std::fs::read(&shipped)?;
    if !bytes.starts_with(b"\0asm") {
        bail!("{} is not a wasm module", shipped.display());
    }
    Ok(FilterArtifact {
        path: shipped,
        cargo_bytes,
        final_bytes: bytes.len() as u64,
        optimised_by,
    })
}

/// `wasm-opt` on the PATH, else the npm-installed one under `target/tools`, installing it there
/// with npm when npm exists. `None` when none of that works.
fn find_wasm_opt() -> Option<PathBuf> {
    if process::has_program("wasm-opt") {
        return Some(PathBuf::from("wasm-opt"));
    }
    let prefix = root().join("target/tools");
    let local = prefix.join("node_modules/.bin/wasm-opt");
    if works(&local) {
        return Some(local);
    }
    if !process::has_program("npm") {
        return None;
    }
    eprintln!(
        "      installing {BINARYEN_NPM} from npm into {}",
        prefix.display()
    );
    let installed = run(Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(BINARYEN_NPM));
    match installed {
        Ok(()) if works(&local) => Some(local),
        Ok(()) => None,
        Err(e) => {
            eprintln!("      npm install failed: {e:#}");
            None
        }
    }
}

fn works(tool: &Path) -> bool {
    tool.is_file()
        && Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}
