//! Log pipeline throughput per core: CRI file bytes (realistic Istio access logs of 1–16 KiB, TEXT
//! and JSON, mixed with pilot-agent lines, long ones split into 16 KiB P/F chunks as containerd
//! does) → CRI parse and join → access-log parse into structured metadata → `PushBatch` →
//! snappy-compressed push bodies of about 1 MiB. Prints MiB/s and lines/s for the whole path and
//! for its stages.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use meshtap_logformat::access::{
    parse_access_log, render_access_log, AccessLogEncoding, AccessRecord,
};
use meshtap_logformat::cri::PodLogPath;
use meshtap_logformat::cri::{parse_cri_line, PartialJoiner, DEFAULT_MAX_JOINED_BYTES};
use meshtap_logformat::loki::{PushBatch, PushBatchConfig, StreamLabels};
use meshtap_logformat::{log_entry_from_line, pod_stream_labels, LineFormat, DEFAULT_JOB};

/// containerd's `max_container_log_line_size`.
const RUNTIME_CHUNK_BYTES: usize = 16 * 1024;
const FLUSH_PAYLOAD_BYTES: usize = 1024 * 1024;
const INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Deterministic pseudo-random numbers (xorshift), so every run measures the same input.
struct Sequence(u64);

impl Sequence {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// An access record whose rendered line is about `target_bytes` long: the size goes into the query
/// string, the forwarded-for chain and the user agent, as in real large lines.
/// How the bulk of a large line's query string is made.
#[derive(Clone, Copy)]
enum QueryStyle {
    /// Vocabulary words, numeric ids and random tokens in equal parts.
    Mixed,
    /// Random hex tokens only: the incompressible worst case for snappy.
    RandomTokens,
}

fn access_record(
    sequence: &mut Sequence,
    index: u64,
    target_bytes: usize,
    style: QueryStyle,
) -> AccessRecord {
    let services = [
        "reviews",
        "ratings",
        "details",
        "productpage",
        "cart",
        "orders",
    ];
    let service = services[sequence.next(services.len() as u64) as usize];
    let mut record = AccessRecord {
        start_time_ns: 1_700_000_000_000_000_000 + (index as i64) * 1_700_000,
        method: Some(["GET", "POST", "PUT"][sequence.next(3) as usize].into()),
        path: Some(format!("/api/v1/{service}/{}", sequence.next(100_000))),
        protocol: Some(["HTTP/1.1", "HTTP/2"][sequence.next(2) as usize].into()),
        response_code: [200, 200, 200, 201, 404, 503][sequence.next(6) as usize],
        response_code_details: Some("via_upstream".into()),
        bytes_received: sequence.next(5000),
        bytes_sent: sequence.next(200_000),
        duration_ms: Some(sequence.next(900)),
        upstream_service_time: Some(sequence.next(800).to_string()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36".into()),
        request_id: Some(format!("{:08x}-{:04x}-9e0f-8b9b-6a2f1e3d4c5b", sequence.next(u32::MAX as u64), sequence.next(0xffff))),
        authority: Some(format!("{service}:9080")),
        upstream_host: Some(format!("10.42.{}.{}:9080", sequence.next(255), sequence.next(255))),
        upstream_cluster: Some(format!("outbound|9080||{service}.bookinfo.svc.cluster.local")),
        upstream_local_address: Some(format!("10.42.1.9:{}", 30000 + sequence.next(30000))),
        downstream_local_address: Some("10.96.14.2:9080".into()),
        downstream_remote_address: Some(format!("10.42.1.9:{}", 30000 + sequence.next(30000))),
        route_name: Some("default".into()),
        ..AccessRecord::default()
    };
    if record.response_code == 503 {
        record.response_flags = Some("UF,URX".into());
        record.response_code_details =
            Some("upstream_reset_before_response_started{connection_failure}".into());
    }
    let base = render_access_log(&record, AccessLogEncoding::Text).len();
    let mut room = target_bytes.saturating_sub(base);
    let forwarded = room / 4;
    let mut chain = String::new();
    while chain.len() + 16 < forwarded {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&format!(
            "203.0.{}.{}",
            sequence.next(255),
            sequence.next(255)
        ));
    }
    room = room.saturating_sub(chain.len());
    if !chain.is_empty() {
        record.x_forwarded_for = Some(chain);
    }
    // Query strings as large real URLs carry them: tracking and filter parameters from a small
    // vocabulary, numeric ids, and random hex tokens (which do not compress).
    let keys = [
        "utm_source",
        "utm_campaign",
        "session",
        "filter",
        "ids",
        "page",
        "sort",
        "token",
    ];
    let words = [
        "newsletter",
        "spring-sale",
        "price_asc",
        "in_stock",
        "category:shoes",
        "en-US",
    ];
    let mut query = String::from("?");
    while query.len() < room {
        let key = keys[sequence.next(keys.len() as u64) as usize];
        let kind = match style {
            QueryStyle::Mixed => sequence.next(3),
            QueryStyle::RandomTokens => 2,
        };
        let value = match kind {
            0 => words[sequence.next(words.len() as u64) as usize].to_owned(),
            1 => sequence.next(10_000_000).to_string(),
            _ => format!(
                "{:016x}{:016x}",
                sequence.next(u64::MAX),
                sequence.next(u64::MAX)
            ),
        };
        query.push_str(&format!("{key}={value}&"));
    }
    record.path = Some(format!("{}{}", record.path.unwrap(), query));
    record
}

/// A CRI file of about [`INPUT_BYTES`]: 85% TEXT access logs, 10% JSON, 5% pilot-agent lines.
fn cri_file(style: QueryStyle) -> (Vec<u8>, usize) {
    let mut sequence = Sequence(0x9e37_79b9_7f4a_7c15);
    let mut file = Vec::with_capacity(INPUT_BYTES + 64 * 1024);
    let mut lines = 0;
    let mut index = 0_u64;
    while file.len() < INPUT_BYTES {
        index += 1;
        let timestamp = format!(
            "2023-11-14T22:13:{:02}.{:09}Z",
            index / 1000 % 60,
            sequence.next(1_000_000_000)
        );
        let target = 1024 + sequence.next(15 * 1024) as usize;
        let message = match sequence.next(20) {
            0 => format!(
                "2023-11-14T22:13:20.199804Z\tinfo\txdsproxy\tconnected to upstream XDS server[{index}]: istiod.istio-system.svc:15012"
            ),
            1 | 2 => render_access_log(&access_record(&mut sequence, index, target, style), AccessLogEncoding::Json),
            _ => render_access_log(&access_record(&mut sequence, index, target, style), AccessLogEncoding::Text),
        };
        let chunks: Vec<&[u8]> = message.as_bytes().chunks(RUNTIME_CHUNK_BYTES).collect();
        for (position, chunk) in chunks.iter().enumerate() {
            let tag = if position + 1 == chunks.len() {
                "F"
            } else {
                "P"
            };
            file.extend_from_slice(format!("{timestamp} stdout {tag} ").as_bytes());
            file.extend_from_slice(chunk);
            file.push(b'\n');
        }
        lines += 1;
    }
    (file, lines)
}

fn stream_labels() -> StreamLabels {
    let path = PodLogPath::parse(
        "/var/log/pods/bookinfo_productpage-v1-6b746f74dc-9stvs_0b1e2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/istio-proxy/0.log",
    )
    .unwrap();
    pod_stream_labels(&path, DEFAULT_JOB, &[("cluster".into(), "east".into())]).unwrap()
}

/// The whole path; returns compressed bytes produced.
fn run_pipeline(file: &[u8], labels: &StreamLabels) -> usize {
    let mut joiner = PartialJoiner::new(DEFAULT_MAX_JOINED_BYTES);
    let mut batch = PushBatch::new(PushBatchConfig::default());
    let mut compressed = 0;
    for line in file
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let cri = parse_cri_line(line).expect("generated CRI line");
        if let Some(joined) = joiner.push(cri) {
            batch.push(labels, log_entry_from_line(joined, LineFormat::Envoy));
            if batch.payload_bytes() >= FLUSH_PAYLOAD_BYTES {
                compressed += batch.finish().unwrap().unwrap().body.len();
            }
        }
    }
    if let Some(push) = batch.finish().unwrap() {
        compressed += push.body.len();
    }
    compressed
}

fn joined_messages(file: &[u8]) -> Vec<String> {
    let mut joiner = PartialJoiner::new(DEFAULT_MAX_JOINED_BYTES);
    file.split(|&byte| byte == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| joiner.push(parse_cri_line(line).unwrap()))
        .map(|joined| String::from_utf8(joined.message.into_owned()).unwrap())
        .collect()
}

fn mib_per_second(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Best of a few runs: (wall time, CPU time when the platform reports it).
fn best_time(runs: usize, mut work: impl FnMut()) -> (Duration, Option<Duration>) {
    let mut best_wall = Duration::MAX;
    let mut best_cpu: Option<Duration> = None;
    for _ in 0..runs {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        work();
        best_wall = best_wall.min(start.elapsed());
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu_time()) {
            let used = after.saturating_sub(before);
            best_cpu = Some(best_cpu.map_or(used, |best| best.min(used)));
        }
    }
    (best_wall, best_cpu)
}

/// CPU time this thread has used, from Linux's `/proc/thread-self/schedstat` (first field, ns).
/// Per-core rates use it, so other processes sharing the machine do not count against us.
fn thread_cpu_time() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn main() {
    let (file, lines) = cri_file(QueryStyle::Mixed);
    let labels = stream_labels();
    let messages = joined_messages(&file);
    assert_eq!(messages.len(), lines);
    let access_lines = messages
        .iter()
        .filter(|m| parse_access_log(m).is_ok())
        .count();
    // One line in twenty is a pilot-agent line; every generated access log must parse, or the
    // bench would time the rejection path.
    assert!(
        access_lines * 20 >= lines * 18,
        "{access_lines} of {lines} lines parsed"
    );

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = criterion.benchmark_group("logformat");
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("cri_to_push_body", |bench| {
        bench.iter(|| black_box(run_pipeline(black_box(&file), &labels)))
    });
    group.bench_function("cri_parse_and_join", |bench| {
        bench.iter(|| {
            let mut joiner = PartialJoiner::new(DEFAULT_MAX_JOINED_BYTES);
            let mut joined = 0;
            for line in file
                .split(|&byte| byte == b'\n')
                .filter(|line| !line.is_empty())
            {
                joined += usize::from(joiner.push(parse_cri_line(line).unwrap()).is_some());
            }
            black_box(joined)
        })
    });
    group.bench_function("access_log_parse", |bench| {
        bench.iter(|| {
            black_box(
                messages
                    .iter()
                    .filter(|message| parse_access_log(message).is_ok())
                    .count(),
            )
        })
    });
    group.finish();
    criterion.final_summary();

    print_summary("mixed queries", &file, lines, &labels);
    let (worst_file, worst_lines) = cri_file(QueryStyle::RandomTokens);
    print_summary(
        "random-token queries (worst case)",
        &worst_file,
        worst_lines,
        &labels,
    );
}

/// Times the whole path outside criterion and prints wall-clock and per-core (CPU-time) rates.
fn print_summary(name: &str, file: &[u8], lines: usize, labels: &StreamLabels) {
    let (wall, cpu) = best_time(5, || {
        black_box(run_pipeline(file, labels));
    });
    let compressed = run_pipeline(file, labels);
    println!(
        "{name}: {:.1} MiB of CRI input, {lines} lines, mean {} B/line; push bodies are {:.1}% of the input",
        file.len() as f64 / (1024.0 * 1024.0),
        file.len() / lines,
        compressed as f64 * 100.0 / file.len() as f64,
    );
    println!(
        "  cri_to_push_body wall clock: {:.1} MiB/s, {:.0} lines/s",
        mib_per_second(file.len(), wall),
        lines as f64 / wall.as_secs_f64(),
    );
    match cpu {
        Some(cpu) => println!(
            "  cri_to_push_body per core (thread CPU time): {:.1} MiB/s, {:.0} lines/s",
            mib_per_second(file.len(), cpu),
            lines as f64 / cpu.as_secs_f64(),
        ),
        None => println!("  per-core rate: thread CPU time unavailable on this platform"),
    }
}
