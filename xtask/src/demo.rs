//! `cargo xtask demo`: the main job. Builds the filter and the binaries, starts `meshtap-sink`
//! on loopback and `meshtap-sim` on a scenario posting to it, and redraws the sink's per-service
//! summary (request rate, error rate, p50/p99) until Ctrl-C or `--seconds`.
//!
//! With `--remote-write-url` the sink also writes to that endpoint; with `--sink-config` the
//! given config is used as is (its `listen` address is read back to find the sink).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{build_filter, cargo, root, run, spawn, target_dir};

const DEMO_TOKEN: &str = "meshtap-demo-token";

struct Options {
    seconds: Option<u64>,
    scenario: PathBuf,
    remote_write_url: Option<String>,
    sink_config: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        seconds: None,
        scenario: root().join("tests/scenarios/demo.yaml"),
        remote_write_url: None,
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
            "--sink-config" => o.sink_config = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?} for `demo`"),
        }
    }
    if o.remote_write_url.is_some() && o.sink_config.is_some() {
        bail!("--remote-write-url and --sink-config are exclusive: put the endpoint in the config");
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

fn write_sink_config(o: &Options, dir: &std::path::Path) -> Result<(PathBuf, String)> {
    if let Some(path) = &o.sink_config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let addr = listen_of(&text).context("the sink config has no top-level `listen:` line")?;
        return Ok((path.clone(), addr));
    }
    let addr = format!("127.0.0.1:{}", free_loopback_port()?);
    let mut text = format!("listen: {addr}\ningest:\n  tokens: [\"{DEMO_TOKEN}\"]\n");
    if let Some(url) = &o.remote_write_url {
        text.push_str(&format!("remote_write:\n  - url: \"{url}\"\n"));
    }
    let path = dir.join("sink.yaml");
    std::fs::write(&path, text)?;
    Ok((path, addr))
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
    let (config, addr) = write_sink_config(&o, &dir)?;

    let mut sink = spawn(
        std::process::Command::new(bin.join("meshtap-sink"))
            .arg("--config")
            .arg(&config),
    )?;
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http_get(&addr, "/readyz"), Ok((200, _))) {
        if Instant::now() > ready_deadline {
            let _ = sink.kill();
            bail!("the sink did not become ready on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut sim_cmd = std::process::Command::new(bin.join("meshtap-sim"));
    sim_cmd
        .arg("--wasm")
        .arg(&wasm)
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
    let mut sim = spawn(&mut sim_cmd)?;

    let started = Instant::now();
    let result = loop {
        std::thread::sleep(Duration::from_secs(2));
        match http_get(&addr, "/v1/summary?format=text") {
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
            // Give the sink one more poll's worth of reports, then stop.
            if !status.success() {
                break Err(anyhow::anyhow!("meshtap-sim exited with {status}"));
            }
            break Ok(());
        }
        if o.seconds
            .is_some_and(|s| started.elapsed() > Duration::from_secs(s + 10))
        {
            break Ok(());
        }
    };
    let _ = sim.kill();
    // SIGTERM lets the sink flush its queues.
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(sink.id().to_string())
        .status();
    let _ = sink.wait();
    result
}
