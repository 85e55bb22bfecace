//! The transport-only contender of the scrape bench: a process that does only what no scraper
//! can skip in this bench — fetch every target's body over loopback HTTP at the interval, and
//! post one remote-write request of that scrape's samples to the receiver — and nothing else: no parsing,
//! no series, no encoding per scrape. Its request is encoded and snappy-compressed once at start
//! from the same 15020-shaped body (with the labels a scraper adds), so its size per sample
//! matches a real scraper's. Its CPU per delivered sample is what the kernel's loopback TCP and
//! a minimal HTTP/1.1 exchange cost here; no scraper's can be lower in this bench.
//!
//! Owns the transport-only request body, its command line and its loop; it must not measure.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sidecar_body::sidecar_body;

const ROLE: &str = "BENCH_TRANSPORT_REQUEST";

/// The command that runs this bench binary as the transport-only contender: the request file, the receiver, the
/// interval and the targets go in the environment.
pub fn command(
    dir: &Path,
    series: usize,
    targets: &[SocketAddr],
    write: SocketAddr,
    interval: u64,
) -> Command {
    let request = dir.join("transport-request.bin");
    std::fs::write(&request, http_request(write, &write_request(series))).unwrap();
    let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let mut command = Command::new(std::env::current_exe().expect("the bench's own path"));
    command
        .env(ROLE, &request)
        .env("BENCH_TRANSPORT_TARGETS", list.join(","))
        .env("BENCH_TRANSPORT_WRITE", write.to_string())
        .env("BENCH_TRANSPORT_INTERVAL", interval.to_string());
    command
}

/// Runs the transport-only loop when this process was started as one (see [`command`]); `false` otherwise.
pub fn run_if_asked() -> bool {
    let Some(request) = std::env::var_os(ROLE) else {
        return false;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let request: Arc<[u8]> = std::fs::read(request)
        .expect("the transport-only request")
        .into();
    let write: SocketAddr = var("BENCH_TRANSPORT_WRITE").parse().unwrap();
    let interval = Duration::from_secs(var("BENCH_TRANSPORT_INTERVAL").parse().unwrap());
    let targets: Vec<SocketAddr> = var("BENCH_TRANSPORT_TARGETS")
        .split(',')
        .map(|t| t.parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let count = targets.len() as u32;
        let tasks: Vec<_> = targets
            .into_iter()
            .enumerate()
            .map(|(i, target)| {
                let offset = interval * i as u32 / count;
                tokio::spawn(scrape_and_post(
                    target,
                    write,
                    request.clone(),
                    interval,
                    offset,
                ))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    true
}

/// Every `interval` from `offset`: the target's body read and dropped, then the request posted;
/// both connections kept alive (the cheapest exchange HTTP/1.1 allows).
async fn scrape_and_post(
    target: SocketAddr,
    write: SocketAddr,
    request: Arc<[u8]>,
    interval: Duration,
    offset: Duration,
) {
    const GET: &[u8] = b"GET /stats/prometheus HTTP/1.1\r\nHost: target\r\n\r\n";
    let mut buffer = vec![0u8; 64 * 1024];
    let mut scrape: Option<TcpStream> = None;
    let mut receiver: Option<TcpStream> = None;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    loop {
        ticks.tick().await;
        scrape = exchange(scrape.take(), target, GET, &mut buffer).await;
        if scrape.is_some() {
            receiver = exchange(receiver.take(), write, &request, &mut buffer).await;
        }
    }
}

/// One request and its response on `connection` (a new one to `to` when there is none); the
/// connection back when the exchange succeeded.
async fn exchange(
    connection: Option<TcpStream>,
    to: SocketAddr,
    request: &[u8],
    buffer: &mut [u8],
) -> Option<TcpStream> {
    let mut stream = match connection {
        Some(stream) => stream,
        None => TcpStream::connect(to).await.ok()?,
    };
    stream.write_all(request).await.ok()?;
    read_response(&mut stream, buffer).await.ok()?;
    Some(stream)
}

/// Reads one response: a 2xx status, its headers, and `content-length` bytes of body, dropped.
async fn read_response(stream: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    let (head, length) = loop {
        filled += read_some(stream, &mut buffer[filled..]).await?;
        if let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break (end + 4, content_length(&buffer[..end])?);
        }
        if filled == buffer.len() {
            return Err(std::io::Error::other("response headers too long"));
        }
    };
    let mut left = (head + length).saturating_sub(filled);
    while left > 0 {
        left = left.saturating_sub(read_some(stream, buffer).await?);
    }
    Ok(())
}

async fn read_some(stream: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    match stream.read(buffer).await? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        n => Ok(n),
    }
}

/// The body length of a response whose status is 2xx.
fn content_length(head: &[u8]) -> std::io::Result<usize> {
    let head = std::str::from_utf8(head).map_err(std::io::Error::other)?;
    if !head.starts_with("HTTP/1.1 2") {
        return Err(std::io::Error::other(format!("answered {head}")));
    }
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| std::io::Error::other("a response without content-length"))
}

fn http_request(write: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {write}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The snappy-compressed `WriteRequest` of one scrape: the body's series with the labels a
/// scraper adds (`cluster`, `instance`, `job`) and the five report series, one sample each.
fn write_request(series: usize) -> Vec<u8> {
    let body = sidecar_body(0, series);
    let mut raw = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (text, value) = line.rsplit_once(' ').expect("name{labels} value");
        let (name, labels) = text.split_once('{').expect("series with labels");
        let mut pairs: Vec<(&str, &str)> = labels
            .trim_end_matches('}')
            .trim_end_matches('"')
            .split("\",")
            .map(|pair| pair.split_once("=\"").expect("name=\"value\""))
            .collect();
        pairs.push(("__name__", name));
        put_series(&mut raw, &mut pairs, value.parse().unwrap());
    }
    for report in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        put_series(&mut raw, &mut vec![("__name__", report)], 1.0);
    }
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

/// Appends `WriteRequest.timeseries` (field 1): the labels sorted by name, one sample.
fn put_series(raw: &mut Vec<u8>, pairs: &mut Vec<(&str, &str)>, value: f64) {
    pairs.extend([
        ("cluster", "bench"),
        ("instance", "127.0.0.1:40000"),
        ("job", "bench"),
    ]);
    pairs.sort_unstable();
    let mut series = Vec::new();
    for (name, value) in pairs.iter() {
        let mut label = Vec::new();
        put_bytes(&mut label, 1, name.as_bytes());
        put_bytes(&mut label, 2, value.as_bytes());
        put_bytes(&mut series, 1, &label);
    }
    let mut sample = vec![0x09];
    sample.extend_from_slice(&value.to_le_bytes());
    sample.push(0x10);
    put_varint(&mut sample, 1_765_000_000_000);
    put_bytes(&mut series, 2, &sample);
    put_bytes(raw, 1, &series);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
