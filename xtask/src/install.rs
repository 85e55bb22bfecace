//! Installs what the tests need on a fresh Debian machine: the wasm targets, Debian's
//! `prometheus` (the real receiver of the end-to-end tests), the `wasm-bindgen-test-runner`
//! whose version must equal the `wasm-bindgen` in Cargo.lock, and the Python packages that
//! decode our Loki push bodies independently of our encoder (`protoc` from grpcio-tools,
//! `protobuf`, and `cramjam` for snappy), and through `install_browser` chromium and
//! playwright-core for the live view's browser test.
//!
//! Each step checks first and does nothing when the tool is already there.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{cargo, has_program, root, run};

/// Rust targets the filter and the V8 tests are built for.
const TARGETS: [&str; 2] = ["wasm32-wasip1", "wasm32-unknown-unknown"];

pub fn everything() -> Result<()> {
    rust_targets()?;
    prometheus()?;
    wasm_bindgen_runner()?;
    python_decoders()?;
    crate::install_browser::chromium_and_playwright()?;
    if !has_program("node") {
        bail!("node is required for the V8 tests (wasm-bindgen-test); install Debian's nodejs");
    }
    Ok(())
}

/// Adds the wasm targets the filter (and the V8 tests) build for, when rustup lacks them.
/// `cargo xtask demo` runs this too: it builds the filter.
pub fn rust_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output()
        .context("rustup is required to add the wasm targets")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        let mut cmd = Command::new("rustup");
        cmd.current_dir(root())
            .args(["target", "add"])
            .args(&missing);
        run(&mut cmd)?;
    }
    Ok(())
}

pub fn prometheus() -> Result<()> {
    if std::path::Path::new("/usr/bin/prometheus").exists() {
        return Ok(());
    }
    apt_get_install("prometheus")?;
    // Debian's package may start a system Prometheus on :9090; the tests start their own on a
    // free loopback port, so it is left alone.
    Ok(())
}

/// vmagent for `cargo xtask bench scrape` (Debian's `victoria-metrics`, 1.79; the package's own
/// service is not needed: the bench starts vmagent itself).
pub fn vmagent() -> Result<()> {
    if std::path::Path::new("/usr/bin/vmagent").exists() {
        return Ok(());
    }
    apt_get_install("victoria-metrics")
}

/// Installs a Debian package with apt-get (through sudo unless root), updating the package
/// lists first if the install fails without.
pub fn apt_get_install(package: &str) -> Result<()> {
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        cmd
    };
    if run(&mut apt(&["install", "-y", "-q", package])).is_err() {
        run(&mut apt(&["update", "-q"]))?;
        run(&mut apt(&["install", "-y", "-q", package]))?;
    }
    Ok(())
}

/// The `wasm-bindgen` version Cargo.lock resolved, which the runner must match exactly.
fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

fn wasm_bindgen_runner() -> Result<()> {
    let want = locked_wasm_bindgen_version()?;
    let have = Command::new("wasm-bindgen-test-runner")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!("installing wasm-bindgen-cli {want} (takes a few minutes once)");
    // `--locked` pins the CLI's own dependencies; when one of them is no longer in the
    // registry, fall back to a fresh resolution of the same CLI version.
    let locked = run(cargo().args([
        "install",
        "wasm-bindgen-cli",
        "--locked",
        "--version",
        &want,
    ]));
    locked.or_else(|error| {
        eprintln!("{error:#}; retrying without --locked");
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", &want]))
    })
}

/// Python packages of the independent Loki protobuf check.
const PYTHON_PACKAGES: [&str; 3] = ["grpcio-tools", "protobuf", "cramjam"];

fn python_decoders() -> Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import grpc_tools.protoc, google.protobuf, cramjam"])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "install", "--quiet"])
        .args(PYTHON_PACKAGES);
    run(&mut cmd)
}
