//! `cargo xtask demo`: the main job. Adds the wasm targets if missing, builds the filter and the
//! binaries, starts `meshtap-sim` on a scenario (HTTP, gRPC and TCP through the compiled filter,
//! posting reports and filter-shipped access logs to the sink, and serving what a cluster
//! would: each sidecar's `:15020`, istiod's `:15014`, CRI pod logs), then `meshtap-sink` on
//! loopback scraping those endpoints and tailing the logs, and redraws the sink's per-service
//! summary (request rate, error rate, p50/p99) until Ctrl-C or `--seconds`.
//!
//! With `--remote-write-url` the sink also writes remote-write there, with `--loki-url` it
//! pushes the access logs (shipped and tailed) there; with `--sink-config` the given config is
//! used as is (its `listen` address is read back to find the sink) and no cluster is served.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::install;
use crate::process::{build_filter, cargo, root, run, spawn, target_dir};

const DEMO_TOKEN: &str = "meshtap-demo-token";
/// The sink config sections `meshtap-sim --cluster-dir` writes (in this order).
const SCRAPE_SECTION: &str = "scrape.yaml";
const LOG_FILES_SECTION: &str = "log_files.yaml";

struct Options {
    seconds: Option<u64>,
    scenario: PathBuf,
    remote_write_url: Option<String>,
    loki_url: Option<String>,
    sink_config: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: None,
        scenario: root().join("tests/scenarios/demo.yaml"),
        remote_write_url: None,
        loki_url: None,
        sink_config: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = Some(value()?.parse().context("--seconds takes a number")?),
            "--scenario" => o.scenario = PathBuf::from(value()?),
            "--remote-write-url" => o.remote_write_url = Some(value()?),
            "--loki-url" => o.loki_url = Some(value()?),
            "--sink-config" => o.sink_config = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?} for `demo`"),
        }
    }
    if (o.remote_write_url.is_some() || o.loki_url.is_some()) && o.sink_config.is_some() {
        bail!("--remote-write-url/--loki-url and --sink-config are exclusive: put the endpoints in the config");
    }
    Ok(o)
}

fn free_loopback_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `listen` address of a sink config file (a top-level `listen: host:port` line).
fn listen_of(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        l.strip_prefix("listen:")
            .map(|v| v.trim().trim_matches('"').replace("0.0.0.0", "127.0.0.1"))
    })
}

/// The sink config: the user's, or one listening on `addr` that scrapes and tails the
/// simulated cluster announced in `cluster_dir` and writes to the given endpoints.
fn write_sink_config(
    o: &Options,
    dir: &Path,
    addr: &str,
    cluster_dir: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(path) = &o.sink_config {
        return Ok(path.clone());
    }
    let mut text = format!("listen: {addr}\ningest:\n  tokens: [\"{DEMO_TOKEN}\"]\n");
    if let Some(url) = &o.remote_write_url {
        text.push_str(&format!("remote_write:\n  - url: \"{url}\"\n"));
    }
    if let Some(url) = &o.loki_url {
        text.push_str(&format!("logs:\n  - url: \"{url}\"\n"));
    }
    if let Some(cluster) = cluster_dir {
        text.push_str(&std::fs::read_to_string(cluster.join(SCRAPE_SECTION))?);
        // Tailing needs somewhere to push to (`log_files` requires a `logs` endpoint).
        if o.loki_url.is_some() {
            text.push_str(&std::fs::read_to_string(cluster.join(LOG_FILES_SECTION))?);
        }
    }
    let path = dir.join("sink.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Waits until `meshtap-sim` has announced its cluster endpoints (or exited).
fn wait_for_cluster(sim: &mut Child, cluster_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cluster_dir.join(LOG_FILES_SECTION).exists() {
        if let Some(status) = sim.try_wait()? {
            bail!("meshtap-sim exited with {status} before serving its cluster endpoints");
        }
        if Instant::now() > deadline {
            bail!("meshtap-sim did not announce its cluster endpoints within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A plain HTTP/1.0 GET on loopback; enough to poll the sink without an HTTP client crate.
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

pub fn command(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    if !o.scenario.exists() {
        bail!("scenario {} does not exist", o.scenario.display());
    }
    // A fresh clone has no wasm target yet: the same step `cargo xtask test` runs.
    install::rust_targets()?;
    let wasm = build_filter()?;
    run(cargo().args([
        "build",
        "-p",
        "meshtap-sink",
        "-p",
        "meshtap-tests",
        "--bins",
    ]))?;
    let bin = target_dir().join("debug");
    let dir = target_dir().join("demo");
    std::fs::create_dir_all(&dir)?;
    let addr = match &o.sink_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            listen_of(&text).context("the sink config has no top-level `listen:` line")?
        }
        None => format!("127.0.0.1:{}", free_loopback_port()?),
    };
    let cluster_dir = o.sink_config.is_none().then(|| dir.join("cluster"));
    if let Some(cluster) = &cluster_dir {
        std::fs::create_dir_all(cluster)?;
        for stale in [SCRAPE_SECTION, LOG_FILES_SECTION] {
            let _ = std::fs::remove_file(cluster.join(stale));
        }
    }

    let mut sim = start_sim(&o, &bin, &wasm, &addr, cluster_dir.as_deref())?;
    if let Some(cluster) = &cluster_dir {
        if let Err(error) = wait_for_cluster(&mut sim, cluster) {
            let _ = sim.kill();
            return Err(error);
        }
    }
    let config = write_sink_config(&o, &dir, &addr, cluster_dir.as_deref())?;
    let mut sink = spawn(
        Command::new(bin.join("meshtap-sink"))
            .arg("--config")
            .arg(&config),
    )?;
    let result = wait_ready(&addr).and_then(|()| redraw_until_done(&o, &addr, &mut sim));
    let _ = sim.kill();
    // SIGTERM lets the sink flush its queues.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(sink.id().to_string())
        .status();
    let _ = sink.wait();
    result
}

fn start_sim(
    o: &Options,
    bin: &Path,
    wasm: &Path,
    addr: &str,
    cluster_dir: Option<&Path>,
) -> Result<Child> {
    let mut sim_cmd = Command::new(bin.join("meshtap-sim"));
    sim_cmd
        .arg("--wasm")
        .arg(wasm)
        .arg("--scenario")
        .arg(&o.scenario)
        .arg("--sink-url")
        .arg(format!("http://{addr}"))
        .arg("--token")
        .arg(DEMO_TOKEN)
        .stdout(std::process::Stdio::null());
    if let Some(s) = o.seconds {
        sim_cmd.arg("--seconds").arg(s.to_string());
    }
    if let Some(cluster) = cluster_dir {
        sim_cmd.arg("--cluster-dir").arg(cluster);
    }
    spawn(&mut sim_cmd)
}

fn wait_ready(addr: &str) -> Result<()> {
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(addr, "/readyz"), Ok((200, _))) {
        if Instant::now() > ready_deadline {
            bail!("the sink did not become ready on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Redraws the summary every two seconds until the simulator ends or `--seconds` (+10 s) pass.
fn redraw_until_done(o: &Options, addr: &str, sim: &mut Child) -> Result<()> {
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        match http_get(addr, "/v1/summary?format=text") {
            Ok((200, table)) => {
                print!("\x1b[2J\x1b[H");
                println!(
                    "meshtap demo — sink http://{addr} — {} s — Ctrl-C to stop\n",
                    started.elapsed().as_secs()
                );
                println!("{table}");
                std::io::stdout().flush()?;
            }
            Ok((code, body)) => eprintln!("summary: HTTP {code}: {body}"),
            Err(e) => eprintln!("summary: {e}"),
        }
        if let Some(status) = sim.try_wait()? {
            if !status.success() {
                bail!("meshtap-sim exited with {status}");
            }
            return Ok(());
        }
        if o.seconds
            .is_some_and(|s| started.elapsed() > Duration::from_secs(s + 10))
        {
            return Ok(());
        }
    }
}
