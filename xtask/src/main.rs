//! `cargo xtask …`: the project's build, test, demo and benchmark entry points.
//!
//! xtask only orchestrates: it installs what the tests need on a fresh Debian machine, runs cargo,
//! and starts the binaries the workspace builds. It holds no product logic.

mod bench;
mod bench_push;
mod bench_scrape;
mod build;
mod demo;
mod image;
mod install;
mod install_browser;
mod manifests;
mod process;
mod test;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build-filter          build the filter .wasm (release, wasm32-wasip1) and print its path and size
  build [--filter-only] release artifacts: target/meshtap/meshtap_filter.wasm (wasm-opt'ed when
                        binaryen is on the PATH or installable from npm; sizes before/after) and
                        the meshtap-sink binary
  image [options]       pack the filter as an OCI image (Istio's Wasm compat variant) into
                        target/meshtap/oci-layout and target/meshtap/meshtap-filter-oci.tar;
                        print the image digest and the wasm sha256
      --repository REPO       default ghcr.io/meshtap/meshtap-filter
      --tag TAG               default the workspace version
      --no-build              pack the existing target/meshtap/meshtap_filter.wasm
  manifests [DIR] [--out FILE]  render a kustomization (default manifests/) with kustomize and
                        the WasmPlugin pinned to the image `image` produced
  test                  install what the tests need, then lint and run every test (the CI command)
  demo [options]        run the sink and meshtap-sim on a scenario and show a live summary
      --seconds N             stop after N seconds (default: until Ctrl-C)
      --scenario FILE         scenario to run (default tests/scenarios/demo.yaml)
      --remote-write-url URL  also write to this Prometheus remote-write endpoint
      --loki-url URL          also push the access logs to this Loki push endpoint
      --sink-config FILE      use this sink config instead of the generated one
  bench [filter|ingest|logs|all]   run the benchmarks (criterion, plus the .wasm in the test host)
  bench scrape [--targets N[,N..]] [--series N] [--interval S] [--seconds N] [--contenders LIST] [--rounds N] [--short]
                                   the sink's scrape stage (also with its spool) vs Prometheus 2.42 agent
                                   mode and vmagent 1.79 (default and streamParse), one after another
  bench push [--targets N] [--series N] [--interval S] [--seconds N]
                                   the sink's CPU and memory per sample: filter reports pushed vs
                                   the same series scraped from 15020-shaped bodies
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    let rest: Vec<String> = args.collect();
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    match cmd.as_str() {
        "build-filter" => {
            let wasm = process::build_filter()?;
            let size = std::fs::metadata(&wasm)?.len();
            println!("{} ({} bytes)", wasm.display(), size);
            Ok(())
        }
        "build" => build::command(&rest),
        "image" => image::command(&rest),
        "manifests" => manifests::command(&rest),
        "test" => test::command(&rest),
        "demo" => demo::command(&rest),
        "bench" => bench::command(&rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command {other:?}")
        }
    }
}
