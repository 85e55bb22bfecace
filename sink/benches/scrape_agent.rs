//! `cargo xtask bench scrape`: the sink's scrape stage and Prometheus 2.42 in agent mode
//! (`--enable-feature=agent`) side by side in one run, scraping the same loopback targets
//! (15020-shaped bodies with Istio's label sets) at the same interval and remote-writing to one
//! counting receiver each. Prints, per side, CPU seconds (utime + stime from `/proc/<pid>/stat`)
//! over the measured window, peak RSS (`VmHWM`), samples delivered, scrapes served, and the
//! derived CPU-µs per sample, bytes of RSS per active series and compressed remote-write bytes
//! per sample.
//!
//! Settings (environment): `MESHTAP_SINK_BIN` (required, the release `meshtap-sink`),
//! `BENCH_TARGETS` (200), `BENCH_SERIES` (2000 per target), `BENCH_INTERVAL_SECONDS` (5),
//! `BENCH_SECONDS` (60, after two warm-up intervals). Both processes run on the same machine
//! at the same time, so the figures are comparable within one run only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

#[path = "shared/sidecar_body.rs"]
mod sidecar_body;

use sidecar_body::sidecar_body;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

struct Settings {
    targets: usize,
    series: usize,
    interval: u64,
    seconds: u64,
    sink_bin: PathBuf,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// Scrapes served, by who asked (`User-Agent`).
#[derive(Default)]
struct Served {
    sink: AtomicU64,
    prometheus: AtomicU64,
}

async fn serve_target(
    State((body, served)): State<(Bytes, Arc<Served>)>,
    headers: HeaderMap,
) -> Bytes {
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let counter = if agent.starts_with("Prometheus/") {
        &served.prometheus
    } else {
        &served.sink
    };
    counter.fetch_add(1, Ordering::Relaxed);
    body
}

/// Samples a receiver decoded, and the compressed bytes they came in.
#[derive(Default)]
struct Delivered {
    samples: AtomicU64,
    bytes: AtomicU64,
}

fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let byte = buf[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
    }
    value
}

/// Calls `each(field, payload)` for the length-delimited fields of a protobuf message and
/// skips the others.
fn length_delimited(buf: &[u8], mut each: impl FnMut(u64, &[u8])) {
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at);
        match key & 7 {
            0 => {
                varint(buf, &mut at);
            }
            1 => at += 8,
            2 => {
                let len = varint(buf, &mut at) as usize;
                each(key >> 3, &buf[at..at + len]);
                at += len;
            }
            5 => at += 4,
            other => panic!("wire type {other} in a WriteRequest"),
        }
    }
}

/// Counts `WriteRequest.timeseries[].samples` without decoding labels (the receiver must not
/// be the bottleneck of the run).
async fn receive(State(delivered): State<Arc<Delivered>>, body: Bytes) -> &'static str {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("remote-write bodies are snappy block data");
    let mut samples = 0;
    length_delimited(&raw, |field, series| {
        if field == 1 {
            length_delimited(series, |field, _| samples += u64::from(field == 2));
        }
    });
    delivered.samples.fetch_add(samples, Ordering::Relaxed);
    delivered
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}

async fn listen(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / ticks_per_second
}

/// Peak resident set size in bytes (`VmHWM`).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in status")
        * 1024
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target_list(targets: &[SocketAddr]) -> String {
    let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    quoted.join(", ")
}

fn start_sink(s: &Settings, dir: &Path, targets: &[SocketAddr], write: SocketAddr) -> Child {
    let config = dir.join("sink.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}\nremote_write:\n  - url: http://{write}/api/v1/write\n    external_labels: {{cluster: bench}}\nscrape:\n  interval: {i}s\n  timeout: {i}s\n  jobs:\n    - name: bench\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: [{}]}}]\n",
            free_port(),
            target_list(targets),
            i = s.interval
        ),
    )
    .unwrap();
    Command::new(&s.sink_bin)
        .arg("--config")
        .arg(&config)
        .env("MESHTAP_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting meshtap-sink")
}

fn start_agent(s: &Settings, dir: &Path, targets: &[SocketAddr], write: SocketAddr) -> Child {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {i}s\n  scrape_timeout: {i}s\n  external_labels: {{cluster: bench}}\nscrape_configs:\n  - job_name: bench\n    metrics_path: /stats/prometheus\n    static_configs: [{{targets: [{}]}}]\nremote_write:\n  - url: http://{write}/api/v1/write\n",
            target_list(targets),
            i = s.interval
        ),
    )
    .unwrap();
    Command::new(PROMETHEUS_BIN)
        .arg("--enable-feature=agent")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.agent.path={}",
            dir.join("agent").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus --enable-feature=agent")
}

/// One side's counters at an instant.
#[derive(Clone, Copy)]
struct Snapshot {
    cpu: f64,
    delivered: u64,
    bytes: u64,
    served: u64,
}

fn main() {
    let sink_bin = std::env::var_os("MESHTAP_SINK_BIN")
        .map(PathBuf::from)
        .expect("MESHTAP_SINK_BIN: run through `cargo xtask bench scrape`");
    let s = Settings {
        targets: env_number("BENCH_TARGETS", 200) as usize,
        series: env_number("BENCH_SERIES", 2000) as usize,
        interval: env_number("BENCH_INTERVAL_SECONDS", 5),
        seconds: env_number("BENCH_SECONDS", 60),
        sink_bin,
    };
    assert!(
        s.series >= 23,
        "BENCH_SERIES must hold one Istio label set (23 samples)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(s));
}

async fn run(s: Settings) {
    let served = Arc::new(Served::default());
    let mut targets = Vec::new();
    for t in 0..s.targets {
        let body = Bytes::from(sidecar_body(t, s.series));
        let router = Router::new()
            .route("/stats/prometheus", get(serve_target))
            .with_state((body, served.clone()));
        targets.push(listen(router).await);
    }
    let sink_delivered = Arc::new(Delivered::default());
    let agent_delivered = Arc::new(Delivered::default());
    let receiver = |d: &Arc<Delivered>| {
        Router::new()
            .route("/api/v1/write", post(receive))
            .with_state(d.clone())
    };
    let sink_write = listen(receiver(&sink_delivered)).await;
    let agent_write = listen(receiver(&agent_delivered)).await;
    let dir = std::env::temp_dir().join(format!("meshtap-bench-scrape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sink = start_sink(&s, &dir, &targets, sink_write);
    let mut agent = start_agent(&s, &dir, &targets, agent_write);
    let ticks = clock_ticks();
    println!(
        "scrape bench: {} targets x {} series, {} s interval, {} s measured after {} s warm-up",
        s.targets,
        s.series,
        s.interval,
        s.seconds,
        2 * s.interval
    );
    tokio::time::sleep(Duration::from_secs(2 * s.interval)).await;
    let snapshot = |pid: u32, delivered: &Delivered, served: &AtomicU64| Snapshot {
        cpu: cpu_seconds(pid, ticks),
        delivered: delivered.samples.load(Ordering::Relaxed),
        bytes: delivered.bytes.load(Ordering::Relaxed),
        served: served.load(Ordering::Relaxed),
    };
    let started = Instant::now();
    let sink_0 = snapshot(sink.id(), &sink_delivered, &served.sink);
    let agent_0 = snapshot(agent.id(), &agent_delivered, &served.prometheus);
    tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    let sink_1 = snapshot(sink.id(), &sink_delivered, &served.sink);
    let agent_1 = snapshot(agent.id(), &agent_delivered, &served.prometheus);
    let window = started.elapsed().as_secs_f64();
    let sink_rss = peak_rss_bytes(sink.id());
    let agent_rss = peak_rss_bytes(agent.id());
    let _ = sink.kill();
    let _ = agent.kill();
    let _ = sink.wait();
    let _ = agent.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let active_series = (s.targets * s.series) as f64;
    println!("measured over {window:.1} s");
    println!(
        "{:<22} {:>9} {:>12} {:>10} {:>13} {:>11} {:>14}",
        "", "CPU s", "samples", "scrapes", "samples/scr", "CPU-us/smp", "RSS peak MiB"
    );
    let mut rows = Vec::new();
    for (name, a, b, rss) in [
        ("meshtap-sink", sink_0, sink_1, sink_rss),
        ("prometheus agent 2.42", agent_0, agent_1, agent_rss),
    ] {
        let cpu = b.cpu - a.cpu;
        let samples = b.delivered - a.delivered;
        let scrapes = b.served - a.served;
        let per_sample_us = cpu * 1e6 / samples.max(1) as f64;
        println!(
            "{name:<22} {cpu:>9.2} {samples:>12} {scrapes:>10} {:>13.1} {per_sample_us:>11.3} {:>14.1}",
            samples as f64 / scrapes.max(1) as f64,
            rss as f64 / (1 << 20) as f64
        );
        println!(
            "{:<22} RSS per active series: {:.0} bytes; remote-write body bytes per sample: {:.1}",
            "",
            rss as f64 / active_series,
            (b.bytes - a.bytes) as f64 / samples.max(1) as f64
        );
        rows.push((per_sample_us, rss as f64));
    }
    println!(
        "meshtap / agent: CPU per sample {:.3}x, peak RSS {:.3}x",
        rows[0].0 / rows[1].0,
        rows[0].1 / rows[1].1
    );
}
