//! `meshtap-sim`: runs a YAML mesh scenario through the compiled meshtap filter in the
//! Envoy-faithful host, posting reports to a sink or to a loopback receiver.
//!
//! A thin CLI over `meshtap_tests::sim`; all behaviour lives in the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use meshtap_tests::host::{Clock, FilterModule, VmStatus};
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};

#[derive(Parser, Debug)]
#[command(about = "Simulate an Istio mesh through the meshtap proxy-wasm filter")]
struct Args {
    /// The compiled filter (`meshtap_filter.wasm`).
    #[arg(long)]
    wasm: PathBuf,
    /// The YAML scenario.
    #[arg(long)]
    scenario: PathBuf,
    /// Post reports to this sink (http://host:port) instead of the loopback receiver.
    #[arg(long)]
    sink_url: Option<String>,
    /// Print every received report as one JSON line (loopback receiver only).
    #[arg(long)]
    print_reports: bool,
    /// Rate-mode run time in seconds (default: until interrupted); two report intervals
    /// without traffic follow, so the final totals are reported.
    #[arg(long)]
    seconds: Option<u64>,
    /// Ingest token put into the filter config (and checked by the loopback receiver).
    #[arg(long, env = "MESHTAP_INGEST_TOKEN")]
    token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    if args.print_reports && args.sink_url.is_some() {
        bail!("--print-reports only works with the loopback receiver (drop --sink-url)");
    }
    let scenario = Scenario::load(&args.scenario)?;
    let module = FilterModule::load(&args.wasm, false)
        .with_context(|| format!("loading {}", args.wasm.display()))?;
    let options = SimOptions {
        sink_url: args.sink_url.clone(),
        token: args.token.clone(),
        print_reports: args.print_reports,
    };
    let count_mode = scenario.is_count_mode();
    let clock = if count_mode {
        Clock::manual_now()
    } else {
        Clock::Real
    };
    let mut sim = Simulation::start(module, scenario, &options, clock)?;
    if count_mode {
        sim.run_counts(CALL_SPACING);
        sim.flush();
    } else {
        let seconds = args.seconds.map_or(Duration::MAX, Duration::from_secs);
        sim.run_rates(seconds);
        // Let every proxy report its final totals.
        let drain = sim.report_interval() * 2 + Duration::from_secs(1);
        sim.idle(drain);
    }
    let totals = sim.totals();
    eprintln!(
        "meshtap-sim: {} client-side and {} server-side streams, {} reports received",
        totals.client_streams,
        totals.server_streams,
        sim.reports().len()
    );
    if totals.client_connections + totals.server_connections > 0 {
        eprintln!(
            "meshtap-sim: {} client-side and {} server-side TCP connections, {} still open",
            totals.client_connections,
            totals.server_connections,
            sim.open_connections()
        );
    }
    let mut failed = false;
    for (name, proxy) in sim.proxies() {
        for (worker, status) in proxy.vm_statuses().into_iter().enumerate() {
            if status != VmStatus::Running {
                eprintln!("meshtap-sim: {name} worker {worker}: {status:?}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some filter VMs are not running");
    }
    Ok(())
}
