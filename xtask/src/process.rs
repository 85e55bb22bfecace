//! Running cargo and child processes from xtask, with the workspace root as working directory.
//!
//! Every command is echoed before it runs so a CI log shows exactly what happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo target directory the workspace builds into (absolute: a relative
/// `CARGO_TARGET_DIR` is relative to the workspace root, as cargo run from there reads it, and the
/// paths derived from it are handed to processes with other working directories).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The cargo the user invoked xtask with.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command to completion, failing with its name if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("\x1b[1m$ {}\x1b[0m", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Starts a command in the background (its stdin is the caller's to set).
pub fn spawn(cmd: &mut Command) -> Result<Child> {
    eprintln!("\x1b[1m$ {} &\x1b[0m", describe(cmd));
    cmd.spawn()
        .with_context(|| format!("could not start {}", describe(cmd)))
}

/// Whether a program answers `--version`.
pub fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Builds the filter for Envoy (release profile, wasm32-wasip1) and returns the `.wasm` path.
pub fn build_filter() -> Result<PathBuf> {
    build_filter_with_profile("release")
}

/// The filter as [`build_filter`] builds it, but with its function names kept (the
/// `wasm-named` profile), for the fuel profile's backtraces.
pub fn build_named_filter() -> Result<PathBuf> {
    build_filter_with_profile("wasm-named")
}

fn build_filter_with_profile(profile: &str) -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--profile",
        profile,
        "--target",
        "wasm32-wasip1",
        "-p",
        "meshtap-filter",
    ]))?;
    let wasm = target_dir().join(format!("wasm32-wasip1/{profile}/meshtap_filter.wasm"));
    if !wasm.exists() {
        bail!("the build finished but {} does not exist", wasm.display());
    }
    Ok(wasm)
}

/// Builds the release `meshtap-sink` and runs the sink bench `bench`, which starts that binary
/// (`MESHTAP_SINK_BIN`) as a process; `env` carries the bench's options.
///
/// The binary measured is the one that ships (the release profile: whole-program LTO, one
/// codegen unit), copied aside first: `cargo bench` builds the package's binary again with the
/// bench profile (thin LTO, 16 codegen units, ~3 % more CPU per sample in the scrape bench)
/// into the same `target/release` directory.
pub fn run_sink_process_bench(bench: &str, env: Vec<(&'static str, String)>) -> Result<()> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "meshtap-sink",
        "--bin",
        "meshtap-sink",
    ]))?;
    let built = target_dir().join("release/meshtap-sink");
    let aside = target_dir().join("bench-sink");
    std::fs::create_dir_all(&aside).with_context(|| format!("creating {}", aside.display()))?;
    let sink = aside.join("meshtap-sink");
    // A new file, not written over the old one (which a bench still running may execute).
    let _ = std::fs::remove_file(&sink);
    std::fs::copy(&built, &sink)
        .with_context(|| format!("copying {} to {}", built.display(), sink.display()))?;
    let mut command = cargo();
    command
        .args(["bench", "-p", "meshtap-sink", "--bench", bench])
        .env("MESHTAP_SINK_BIN", &sink)
        .envs(env);
    run(&mut command)
}
