//! `meshtap-sim`: runs a YAML mesh scenario through the compiled meshtap filter in the
//! Envoy-faithful host, posting reports to a sink or to a loopback receiver.
//!
//! A thin CLI over `meshtap_tests::sim`; all behaviour lives in the library.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use meshtap_tests::host::{Clock, FilterModule, VmStatus};
use meshtap_tests::sim::cluster::{sink_config, Cluster};
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
    /// Post reports to this sink (http://host:port) instead of the loopback receiver; `-`
    /// reads it from the first line of stdin once the cluster endpoints are announced.
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
    /// Also serve what a cluster would (each sidecar's :15020, istiod's :15014, each node's
    /// ztunnel :15020 in ambient scenarios on loopback ports, CRI pod logs under DIR/pods), and write the sink config sections that collect
    /// them: DIR/scrape.yaml and DIR/log_files.yaml (positions in DIR/positions.json), and the
    /// demo's whole sink config, DIR/sink.yaml (loopback port 0, the token, both sections).
    #[arg(long, value_name = "DIR")]
    cluster_dir: Option<PathBuf>,
    /// Scrape interval written into DIR/scrape.yaml.
    #[arg(long, default_value = "5s")]
    scrape_interval: String,
}

/// Starts the cluster endpoints under `dir` (emptied first) and announces them as sink config
/// sections and as the demo's whole sink config, each file written whole (temporary name,
/// then rename; `sink.yaml` last).
fn start_cluster(
    scenario: &Scenario,
    clock: Clock,
    dir: &Path,
    args: &Args,
) -> anyhow::Result<Cluster> {
    let pods = dir.join("pods");
    if pods.exists() {
        std::fs::remove_dir_all(&pods).with_context(|| format!("emptying {}", pods.display()))?;
    }
    let positions = dir.join("positions.json");
    let _ = std::fs::remove_file(&positions);
    let cluster =
        Cluster::for_scenario(scenario, clock, &pods).context("starting the cluster endpoints")?;
    let announcement = cluster.announcement();
    let interval = &args.scrape_interval;
    for (name, text) in [
        (
            "scrape.yaml",
            sink_config::scrape_section(announcement, interval),
        ),
        (
            "log_files.yaml",
            sink_config::log_files_section(announcement, &positions),
        ),
        (
            "sink.yaml",
            sink_config::demo_sink(announcement, args.token.as_deref(), interval, &positions),
        ),
    ] {
        let temporary = dir.join(format!(".{name}.tmp"));
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, dir.join(name))?;
    }
    eprintln!(
        "meshtap-sim: istiod metrics on http://{}/metrics, {} sidecars' and {} ztunnels' stats, pod logs in {}",
        announcement.istiod,
        announcement.sidecars.len(),
        announcement.ztunnels.len(),
        pods.display()
    );
    Ok(cluster)
}

/// The sink URL: as given, or with `-` the first line of stdin (read once the cluster is
/// announced, so the sink can be started on its config first).
fn sink_url(arg: Option<&str>) -> anyhow::Result<Option<String>> {
    match arg {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the sink URL from stdin")?;
            let url = line.trim();
            if url.is_empty() {
                bail!("--sink-url -: stdin closed before a URL arrived");
            }
            Ok(Some(url.to_owned()))
        }
        other => Ok(other.map(str::to_owned)),
    }
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
    let count_mode = scenario.is_count_mode();
    let clock = if count_mode {
        Clock::manual_now()
    } else {
        Clock::Real
    };
    let cluster = match &args.cluster_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Some(start_cluster(&scenario, clock.clone(), dir, &args)?)
        }
        None => None,
    };
    let options = SimOptions {
        sink_url: sink_url(args.sink_url.as_deref())?,
        token: args.token.clone(),
        print_reports: args.print_reports,
    };
    let mut sim = Simulation::start(module, scenario, &options, clock)?;
    if let Some(cluster) = cluster {
        sim.attach_cluster(cluster);
    }
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
    print_summary(&sim);
    check_vms(&sim)
}

/// Prints how many streams, connections and reports the run produced (stderr).
fn print_summary(sim: &Simulation) {
    let totals = sim.totals();
    eprintln!(
        "meshtap-sim: {} client-side, {} waypoint and {} server-side streams, {} reports received",
        totals.client_streams,
        totals.waypoint_streams,
        totals.server_streams,
        sim.reports().len()
    );
    let connections =
        totals.client_connections + totals.waypoint_connections + totals.server_connections;
    if connections > 0 {
        eprintln!(
            "meshtap-sim: {} client-side, {} waypoint and {} server-side TCP connections, {} still open",
            totals.client_connections,
            totals.waypoint_connections,
            totals.server_connections,
            sim.open_connections()
        );
    }
}

/// Fails when any proxy's filter VM is not running (each one named on stderr).
fn check_vms(sim: &Simulation) -> anyhow::Result<()> {
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
