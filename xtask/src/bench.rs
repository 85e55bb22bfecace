//! `cargo xtask bench [filter|ingest|spool|logs|all|scrape|push]`: runs the criterion benchmarks
//! and the `.wasm` measurements in the test host (`all`), the scrape comparison with Prometheus'
//! agent mode and vmagent ([`crate::bench_scrape`]) or push versus scrape
//! ([`crate::bench_push`]); the last two are not part of `all`: they run processes for minutes. Figures are printed by the benches themselves; compare
//! them as ratios within one run, never across machines.

use anyhow::{bail, Result};

use crate::process::{build_filter, build_named_filter, cargo, run, target_dir};

/// The baseline filter of `filter_wasm`'s marginal figures (`tests/empty-filter`), built like
/// the filter (release, wasm32-wasip1).
fn build_empty_filter() -> Result<std::path::PathBuf> {
    run(cargo().args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip1",
        "-p",
        "meshtap-empty-filter",
    ]))?;
    Ok(target_dir().join("wasm32-wasip1/release/meshtap_empty_filter.wasm"))
}

fn filter() -> Result<()> {
    // The filter builds for wasm32-wasip1, which a fresh machine's rustup lacks.
    crate::install::rust_targets()?;
    let wasm = build_filter()?;
    let empty = build_empty_filter()?;
    // The per-request path natively (criterion).
    run(cargo().args(["bench", "-p", "meshtap-filter", "--bench", "request_path"]))?;
    // The compiled .wasm in the Envoy stand-in: instructions (fuel), ns, host calls, memory.
    run(cargo()
        .args(["bench", "-p", "meshtap-tests", "--bench", "filter_wasm"])
        .env("MESHTAP_FILTER_WASM", &wasm)
        .env("MESHTAP_EMPTY_FILTER_WASM", &empty))?;
    // Where a request's fuel goes, on the same code built with its function names.
    let named = build_named_filter()?;
    run(cargo()
        .args(["bench", "-p", "meshtap-tests", "--bench", "filter_profile"])
        .env("MESHTAP_FILTER_WASM_NAMED", &named))
}

fn ingest() -> Result<()> {
    run(cargo().args(["bench", "-p", "meshtap-sink", "--bench", "ingest"]))
}

/// A lane's batch through the in-memory queue and through the on-disk spool.
fn spool() -> Result<()> {
    run(cargo().args(["bench", "-p", "meshtap-sink", "--bench", "spool"]))
}

/// CRI lines to compressed Loki push bodies (MiB/s and lines/s per core).
fn logs() -> Result<()> {
    run(cargo().args(["bench", "-p", "meshtap-logformat", "--bench", "pipeline"]))
}

pub fn command(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str).unwrap_or("all") {
        "filter" => filter(),
        "ingest" => ingest(),
        "logs" => logs(),
        "spool" => spool(),
        "scrape" => crate::bench_scrape::command(&args[1..]),
        "push" => crate::bench_push::command(&args[1..]),
        "all" => {
            filter()?;
            ingest()?;
            spool()?;
            logs()
        }
        other => {
            bail!("unknown bench {other:?} (known: filter, ingest, spool, logs, all, scrape, push)")
        }
    }
}
