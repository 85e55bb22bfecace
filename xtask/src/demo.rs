//! `cargo xtask demo`: the main job. Adds the wasm targets if missing, builds the filter and the
//! binaries, starts `meshtap-sim` on a scenario (HTTP, gRPC and TCP through the compiled filter,
//! posting reports and filter-shipped access logs to the sink, and serving what a cluster
//! would: each sidecar's `:15020`, istiod's `:15014`, CRI pod logs), then `meshtap-sink` on
//! the sink config the simulator writes (loopback port 0, scraping those endpoints and tailing
//! the logs into the live view), tells the simulator the sink's address (read from the sink's
//! "ready" line), prints the page's URL and redraws the sink's per-service summary (request
//! rate, error rate, p50/p99) until Ctrl-C or `--seconds`.
//!
//! With `--remote-write-url` the sink also writes remote-write there, with `--loki-url` it
//! pushes the access logs (shipped and tailed) there; with `--sink-config` the given config is
//! used as is (the sink is started first, its address read back the same way) and no cluster
//! is served. The demo's sink config itself is the simulator's (`sink_config::demo_sink`), so
//! the end-to-end tests of the demo run the same one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::install;
use crate::process::{build_filter, cargo, root, run, spawn, target_dir};

#[path = "../../sink/tests/common/ready_line.rs"]
mod ready_line;

const DEMO_TOKEN: &str = "meshtap-demo-token";
/// The whole sink config `meshtap-sim --cluster-dir` writes once its endpoints are served.
const SINK_CONFIG: &str = "sink.yaml";
/// How long the simulator (loading the filter) and the sink may take to start.
const START_LIMIT: Duration = Duration::from_secs(120);

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

/// The sink config: the user's, or the simulator's (announced in `cluster_dir`) with the
/// endpoints given on the command line appended.
fn write_sink_config(o: &Options, dir: &Path, cluster_dir: &Path) -> Result<PathBuf> {
    if let Some(path) = &o.sink_config {
        return Ok(path.clone());
    }
    let mut text = std::fs::read_to_string(cluster_dir.join(SINK_CONFIG))?;
    if let Some(url) = &o.remote_write_url {
        text.push_str(&format!("remote_write:\n  - url: \"{url}\"\n"));
    }
    if let Some(url) = &o.loki_url {
        text.push_str(&format!("logs:\n  - url: \"{url}\"\n"));
    }
    let path = dir.join("sink.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Waits until `meshtap-sim` has announced its cluster endpoints (or exited).
fn wait_for_cluster(sim: &mut Child, cluster_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + START_LIMIT;
    while !cluster_dir.join(SINK_CONFIG).exists() {
        if let Some(status) = sim.try_wait()? {
            bail!("meshtap-sim exited with {status} before serving its cluster endpoints");
        }
        if Instant::now() > deadline {
            bail!("meshtap-sim did not announce its cluster endpoints within {START_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Starts the sink on `config`, its log in `log`, and waits for its "ready" line and
/// `/readyz`; returns it and the address it listens on (loopback for a wildcard address).
fn start_sink(bin: &Path, config: &Path, log: &Path) -> Result<(Child, String)> {
    let mut sink = spawn(
        Command::new(bin.join("meshtap-sink"))
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(log)?),
    )?;
    match wait_ready(&mut sink, log) {
        Ok(addr) => Ok((sink, addr)),
        Err(error) => {
            stop_sink(&mut sink);
            Err(error)
        }
    }
}

fn wait_ready(sink: &mut Child, log: &Path) -> Result<String> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = ready_line::ready_address(&text, "listen").map(reachable) {
            let addr = addr.to_string();
            if matches!(http_get(&addr, "/readyz"), Ok((200, _))) {
                return Ok(addr);
            }
        }
        if let Some(status) = sink.try_wait()? {
            bail!("meshtap-sink exited with {status}:\n{text}");
        }
        if Instant::now() > deadline {
            bail!(
                "meshtap-sink was not ready within {START_LIMIT:?} (log: {})",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A listen address as a client on this machine reaches it.
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// SIGTERM lets the sink flush its queues.
fn stop_sink(sink: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(sink.id().to_string())
        .status();
    let _ = sink.wait();
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
    let sink_log = dir.join("sink.log");
    let (mut sim, mut sink, addr) = match &o.sink_config {
        Some(config) => {
            let (sink, addr) = start_sink(&bin, config, &sink_log)?;
            let sim = start_sim(&o, &bin, &wasm, &format!("http://{addr}"), None)?;
            (sim, sink, addr)
        }
        None => start_with_cluster(&o, &bin, &wasm, &dir, &sink_log)?,
    };
    println!(
        "meshtap demo: live view on http://{addr}/ (sink log: {})",
        sink_log.display()
    );
    let result = redraw_until_done(&o, &addr, &mut sim);
    let _ = sim.kill();
    let _ = sim.wait();
    stop_sink(&mut sink);
    result
}

/// Starts the simulator serving a cluster (its sink URL to come on stdin), the sink on the
/// config it writes, then hands the simulator the sink's address.
fn start_with_cluster(
    o: &Options,
    bin: &Path,
    wasm: &Path,
    dir: &Path,
    sink_log: &Path,
) -> Result<(Child, Child, String)> {
    let cluster = dir.join("cluster");
    std::fs::create_dir_all(&cluster)?;
    let _ = std::fs::remove_file(cluster.join(SINK_CONFIG));
    let mut sim = start_sim(o, bin, wasm, "-", Some(&cluster))?;
    let started = wait_for_cluster(&mut sim, &cluster)
        .and_then(|()| write_sink_config(o, dir, &cluster))
        .and_then(|config| start_sink(bin, &config, sink_log));
    let (mut sink, addr) = match started {
        Ok(started) => started,
        Err(error) => {
            let _ = sim.kill();
            return Err(error);
        }
    };
    let told = sim
        .stdin
        .take()
        .context("the simulator's stdin")
        .and_then(|mut stdin| Ok(writeln!(stdin, "http://{addr}")?));
    if let Err(error) = told {
        let _ = sim.kill();
        stop_sink(&mut sink);
        return Err(error);
    }
    Ok((sim, sink, addr))
}

/// Starts `meshtap-sim` posting to `sink_url` (`-`: read from its stdin, which is piped).
fn start_sim(
    o: &Options,
    bin: &Path,
    wasm: &Path,
    sink_url: &str,
    cluster_dir: Option<&Path>,
) -> Result<Child> {
    let mut sim_cmd = Command::new(bin.join("meshtap-sim"));
    sim_cmd
        .arg("--wasm")
        .arg(wasm)
        .arg("--scenario")
        .arg(&o.scenario)
        .arg("--sink-url")
        .arg(sink_url)
        .arg("--token")
        .arg(DEMO_TOKEN)
        .stdin(if sink_url == "-" {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null());
    if let Some(s) = o.seconds {
        sim_cmd.arg("--seconds").arg(s.to_string());
    }
    if let Some(cluster) = cluster_dir {
        sim_cmd.arg("--cluster-dir").arg(cluster);
    }
    spawn(&mut sim_cmd)
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
                    "meshtap demo — live view http://{addr}/ — {} s — Ctrl-C to stop\n",
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
