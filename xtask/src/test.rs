//! `cargo xtask test`: the one command CI runs. Installs prerequisites, checks formatting and
//! lints for the host and wasm targets, builds the filter `.wasm`, then runs the native tests,
//! the `.wasm`-in-host and end-to-end tests, and the pure-logic tests under Node's V8.

use anyhow::{bail, Result};

use crate::install;
use crate::process::{build_filter, cargo, run};

pub fn run_all(skip_lint: bool) -> Result<()> {
    install::everything()?;
    if !skip_lint {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    }
    let wasm = build_filter()?;
    if !skip_lint {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        run(cargo().args([
            "clippy",
            "-p",
            "meshtap-filter",
            "--target",
            "wasm32-wasip1",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    run(cargo()
        .args(["test", "--workspace"])
        .env("MESHTAP_FILTER_WASM", &wasm)
        // The live view's browser test fails instead of skipping when chromium is missing.
        .env("MESHTAP_REQUIRE_BROWSER", "1"))?;
    // Pure logic under V8 (Node), the engine Envoy runs the filter on.
    run(cargo().args([
        "test",
        "-p",
        "meshtap-report",
        "-p",
        "meshtap-filter",
        "--no-default-features",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    Ok(())
}

pub fn command(args: &[String]) -> Result<()> {
    let mut skip_lint = false;
    for a in args {
        match a.as_str() {
            "--no-lint" => skip_lint = true,
            other => bail!("unknown option {other:?} for `test` (known: --no-lint)"),
        }
    }
    run_all(skip_lint)
}
