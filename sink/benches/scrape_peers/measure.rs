//! What the scrape bench measures its contenders with: loopback targets serving one body each
//! (counting scrapes), a remote-write receiver counting samples and compressed bytes, and a
//! process's CPU seconds and peak RSS from `/proc`. Shared by `scrape_agent.rs` through
//! `#[path]`; it must not know the contenders.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;

/// What the targets served and the receiver got, counted since the bench started.
#[derive(Default)]
pub struct Counters {
    pub scrapes: AtomicU64,
    pub samples: AtomicU64,
    pub bytes: AtomicU64,
}

async fn serve_target(State((body, counters)): State<(Bytes, Arc<Counters>)>) -> Bytes {
    counters.scrapes.fetch_add(1, Ordering::Relaxed);
    body
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
async fn receive(State(counters): State<Arc<Counters>>, body: Bytes) -> &'static str {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("remote-write bodies are snappy block data");
    let mut samples = 0;
    length_delimited(&raw, |field, series| {
        if field == 1 {
            length_delimited(series, |field, _| samples += u64::from(field == 2));
        }
    });
    counters.samples.fetch_add(samples, Ordering::Relaxed);
    counters
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

/// One target per body, on `/stats/prometheus`.
pub async fn serve_targets(bodies: Vec<Bytes>, counters: &Arc<Counters>) -> Vec<SocketAddr> {
    let mut targets = Vec::new();
    for body in bodies {
        let router = Router::new()
            .route("/stats/prometheus", get(serve_target))
            .with_state((body, counters.clone()));
        targets.push(listen(router).await);
    }
    targets
}

/// The remote-write receiver, on `/api/v1/write`.
pub async fn serve_receiver(counters: &Arc<Counters>) -> SocketAddr {
    let router = Router::new()
        .route("/api/v1/write", post(receive))
        .with_state(counters.clone());
    listen(router).await
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / ticks_per_second
}

/// Peak resident set size in bytes (`VmHWM`).
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in status")
        * 1024
}

pub fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
