//! `cargo xtask bench push`: what the sink spends per delivered sample when the filters push
//! their reports, against scraping the same series, for one simulated mesh, in one run.
//!
//! The mesh: `BENCH_TARGETS` pods, each with the label sets of the scrape bench's 15020-shaped
//! body (`shared/sidecar_body.rs`: Istio's request counter and duration histogram with the 25
//! labels, 23 samples per label set; no Envoy filler, so both sides carry exactly the same
//! series). **Push**: every pod posts its cumulative report once per interval, each at its own
//! phase, as the filter does (`POST /v1/reports`, protobuf + snappy, label values in the
//! report's string table); the reports are built from the parsed bodies, so they hold the same
//! series and values. **Scrape**: the sink scrapes the same bodies from loopback targets at
//! the same interval. One sink at a time, with the same external label and the same counting
//! remote-write receiver (`scrape_peers/measure.rs`); per side: CPU seconds over the measured
//! window (`/proc/<pid>/stat`), peak RSS (`VmHWM`), samples delivered, CPU-µs per sample, RSS
//! per active series; then push over scrape.
//!
//! Settings (environment): `MESHTAP_SINK_BIN` (required, the release `meshtap-sink`),
//! `BENCH_TARGETS` (pods, 200), `BENCH_SERIES` (per pod, rounded down to whole label sets of 23
//! samples; 1978 = 86 sets), `BENCH_INTERVAL_SECONDS` (5), `BENCH_SECONDS` (60, after a
//! warm-up of two intervals and two rounds of samples). Figures are comparable within one run
//! only. It measures; the pushing and the scraping load (reports encoded and posted, bodies
//! served) is the bench process's, not the sink's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use meshtap_report::schema::{REQUESTS_TOTAL, REQUEST_DURATION};
use meshtap_report::{MetricFamily, MetricKind, Proxy, Report, Series, PROTOCOL_VERSION};
use meshtap_textformat::{Parser, SeriesRole, TypedSamples};

#[path = "scrape_peers/measure.rs"]
mod measure;
#[path = "shared/sidecar_body.rs"]
mod sidecar_body;

use measure::Counters;

/// Samples per label set: the counter, 20 buckets, the sum and the count.
const SAMPLES_PER_SET: usize = 23;
/// The longest warm-up; a side still behind then is measured as it is.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

struct Settings {
    pods: usize,
    series: usize,
    interval: u64,
    seconds: u64,
    sink_bin: PathBuf,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

fn settings() -> Settings {
    let sink_bin = std::env::var_os("MESHTAP_SINK_BIN")
        .map(PathBuf::from)
        .expect("MESHTAP_SINK_BIN: run through `cargo xtask bench push`");
    let series = setting("BENCH_SERIES", 1978) as usize / SAMPLES_PER_SET * SAMPLES_PER_SET;
    assert!(
        series > 0,
        "BENCH_SERIES must hold one label set (23 samples)"
    );
    Settings {
        pods: setting("BENCH_TARGETS", 200) as usize,
        series,
        interval: setting("BENCH_INTERVAL_SECONDS", 5),
        seconds: setting("BENCH_SECONDS", 60),
        sink_bin,
    }
}

/// Which way the series reach the sink.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Push,
    Scrape,
}

impl Side {
    fn title(self) -> &'static str {
        match self {
            Side::Push => "push (filter reports)",
            Side::Scrape => "scrape (15020 bodies)",
        }
    }
}

/// One side's figures over the measured window.
struct Row {
    side: Side,
    cpu_seconds: f64,
    samples: u64,
    peak_rss: u64,
    active_series: usize,
    /// Reports the sink did not accept in the window (push only).
    refused: u64,
}

impl Row {
    fn cpu_us_per_sample(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.samples.max(1) as f64
    }

    fn rss_per_series(&self) -> f64 {
        self.peak_rss as f64 / self.active_series as f64
    }

    fn print(&self) {
        println!(
            "{:<24} {:>8.2} {:>10} {:>10.3} {:>9.1} {:>9.0} {:>8}",
            self.side.title(),
            self.cpu_seconds,
            self.samples,
            self.cpu_us_per_sample(),
            self.peak_rss as f64 / (1 << 20) as f64,
            self.rss_per_series(),
            self.refused,
        );
    }
}

fn main() {
    let s = settings();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(run(&s));
    let (push, scrape) = (&rows[0], &rows[1]);
    println!(
        "\npush / scrape: CPU per sample {:.2}x, peak RSS {:.2}x",
        push.cpu_us_per_sample() / scrape.cpu_us_per_sample(),
        push.peak_rss as f64 / scrape.peak_rss as f64
    );
}

async fn run(s: &Settings) -> Vec<Row> {
    let counters = Arc::new(Counters::default());
    let bodies: Vec<String> = (0..s.pods)
        .map(|pod| sidecar_body::sidecar_body(pod, s.series))
        .collect();
    let reports: Vec<Report> = bodies
        .iter()
        .enumerate()
        .map(|(pod, body)| report_of(pod, body, s.interval))
        .collect();
    let targets =
        measure::serve_targets(bodies.into_iter().map(Bytes::from).collect(), &counters).await;
    let write = measure::serve_receiver(&counters).await;
    println!(
        "push vs scrape: {} pods x {} series ({} label sets), {} s interval, {} s measured after a warm-up of at least {} s and two rounds of samples, one side at a time",
        s.pods,
        s.series,
        s.series / SAMPLES_PER_SET,
        s.interval,
        s.seconds,
        2 * s.interval
    );
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>9} {:>9} {:>8}",
        "side", "CPU s", "samples", "CPU-us/smp", "RSS MiB", "B/series", "refused"
    );
    let mut rows = Vec::new();
    for side in [Side::Push, Side::Scrape] {
        let row = measure_side(s, side, &reports, &targets, write, &counters).await;
        row.print();
        rows.push(row);
    }
    rows
}

/// A pod's report: the body's Istio families as the filter reports them (counter values and
/// per-bucket histogram counts), label values in the string table.
fn report_of(pod: usize, body: &str, interval: u64) -> Report {
    let mut strings: Vec<String> = Vec::new();
    let mut string_ids: HashMap<String, u32> = HashMap::new();
    let mut families: Vec<MetricFamily> = Vec::new();
    // (family index, label refs) → series index, to gather a histogram's lines.
    let mut series_of: HashMap<(usize, Vec<u32>), usize> = HashMap::new();
    let samples = TypedSamples::new(Parser::for_content_type(body.as_bytes(), None));
    for sample in samples.flatten() {
        let labels: Vec<(&str, String)> = sample
            .normalized_labels()
            .filter(|(name, _)| *name != "le")
            .map(|(name, value)| (name, value.into_owned()))
            .collect();
        let index = match families.iter().position(|f| f.name == sample.family) {
            Some(index) => index,
            None => {
                families.push(family(sample.family, &labels));
                families.len() - 1
            }
        };
        let refs: Vec<u32> = labels
            .into_iter()
            .map(|(_, value)| {
                *string_ids.entry(value.clone()).or_insert_with(|| {
                    strings.push(value);
                    strings.len() as u32 - 1
                })
            })
            .collect();
        let family = &mut families[index];
        let at = *series_of.entry((index, refs.clone())).or_insert_with(|| {
            family.series.push(Series {
                label_refs: refs,
                ..Series::default()
            });
            family.series.len() - 1
        });
        let series = &mut family.series[at];
        match sample.role {
            SeriesRole::Value => series.value = sample.sample.value,
            SeriesRole::Bucket { .. } => series.bucket_counts.push(sample.sample.value as u64),
            SeriesRole::Sum => series.sum = sample.sample.value,
            _ => {}
        }
    }
    for series in families.iter_mut().flat_map(|f| f.series.iter_mut()) {
        // Cumulative `_bucket` values to per-bucket counts, as reports carry them.
        for i in (1..series.bucket_counts.len()).rev() {
            series.bucket_counts[i] -= series.bucket_counts[i - 1];
        }
    }
    Report {
        protocol_version: PROTOCOL_VERSION,
        proxy: Some(Proxy {
            namespace: "bookinfo".into(),
            pod: format!("reviews-{pod}"),
            ..Proxy::default()
        }),
        proxy_start_ms: 1_700_000_000_000,
        interval_ms: (interval * 1000) as u32,
        families,
        strings,
        ..Report::default()
    }
}

/// The report family of a body's family, its label names in the body's order.
fn family(name: &str, labels: &[(&str, String)]) -> MetricFamily {
    let histogram = name == REQUEST_DURATION;
    assert!(
        histogram || name == REQUESTS_TOTAL,
        "the body holds only Istio's request counter and duration histogram, not {name}"
    );
    MetricFamily {
        name: name.to_owned(),
        kind: if histogram {
            MetricKind::Histogram as i32
        } else {
            MetricKind::Counter as i32
        },
        label_names: labels.iter().map(|(n, _)| n.to_string()).collect(),
        bounds: if histogram {
            meshtap_report::schema::DEFAULT_BUCKETS.to_vec()
        } else {
            Vec::new()
        },
        ..MetricFamily::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Posts every pod's report once per interval, pod `i` at `i / pods` of the interval, until
/// the returned tasks are aborted; counts the reports the sink did not answer with a success.
fn push_reports(
    reports: &[Report],
    sink: SocketAddr,
    interval: u64,
    refused: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::new();
    let url = format!("http://{sink}{}", meshtap_report::REPORT_PATH);
    let period = Duration::from_secs(interval);
    reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            let (client, url, mut report) = (client.clone(), url.clone(), report.clone());
            let refused = refused.clone();
            let phase = period.mul_f64(i as f64 / reports.len() as f64);
            tokio::spawn(async move {
                let start = tokio::time::Instant::now() + phase;
                let mut ticks = tokio::time::interval_at(start, period);
                loop {
                    ticks.tick().await;
                    report.sequence += 1;
                    report.timestamp_ms = now_ms();
                    let body = meshtap_report::encode(&report);
                    let sent = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .body(body)
                        .send()
                        .await;
                    if !sent.is_ok_and(|response| response.status().is_success()) {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// Starts the sink: listening for reports on `listen`, with the scrape job on `targets` for
/// the scrape side, remote-writing to `write` with the scrape bench's external label.
fn start_sink(
    s: &Settings,
    dir: &Path,
    listen: SocketAddr,
    write: SocketAddr,
    scrape: Option<&[SocketAddr]>,
) -> Child {
    let config = dir.join("sink.yaml");
    let scrape = scrape.map_or(String::new(), |targets| {
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        format!(
            "scrape:\n  interval: {i}s\n  timeout: {i}s\n  jobs:\n    - name: bench\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: [{}]}}]\n",
            quoted.join(", "),
            i = s.interval
        )
    });
    std::fs::write(
        &config,
        format!(
            "listen: {listen}\nremote_write:\n  - url: http://{write}/api/v1/write\n    external_labels: {{cluster: bench}}\n{scrape}"
        ),
    )
    .unwrap();
    let mut command = Command::new(&s.sink_bin);
    command
        .arg("--config")
        .arg(&config)
        .env("MESHTAP_LOG", "warn")
        .stdout(Stdio::null());
    // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent; it makes the
    // kernel kill the sink if the bench dies before killing it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn().expect("starting meshtap-sink")
}

async fn measure_side(
    s: &Settings,
    side: Side,
    reports: &[Report],
    targets: &[SocketAddr],
    write: SocketAddr,
    counters: &Counters,
) -> Row {
    let dir = std::env::temp_dir().join(format!("meshtap-bench-push-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", measure::free_port())
        .parse()
        .unwrap();
    let scrape = (side == Side::Scrape).then_some(targets);
    let mut child = start_sink(s, &dir, listen, write, scrape);
    let refused = Arc::new(AtomicU64::new(0));
    let pushers = match side {
        Side::Push => {
            wait_for_listener(listen).await;
            push_reports(reports, listen, s.interval, &refused)
        }
        Side::Scrape => Vec::new(),
    };
    let pid = child.id();
    let ticks = measure::clock_ticks();
    warm_up(s, counters).await;
    let snapshot = || {
        (
            measure::cpu_seconds(pid, ticks),
            counters.samples.load(Ordering::Relaxed),
        )
    };
    let (cpu_0, samples_0) = snapshot();
    let refused_0 = refused.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    let (cpu_1, samples_1) = snapshot();
    let refused_in_window = refused.load(Ordering::Relaxed) - refused_0;
    let peak_rss = measure::peak_rss_bytes(pid);
    pushers.iter().for_each(|p| p.abort());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    // Let the last writes of this side end before the next one starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Row {
        side,
        cpu_seconds: cpu_1 - cpu_0,
        samples: samples_1 - samples_0,
        peak_rss,
        active_series: s.pods * s.series,
        refused: refused_in_window,
    }
}

/// Waits until the sink accepts connections (bounded).
async fn wait_for_listener(listen: SocketAddr) {
    let started = Instant::now();
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sink did not listen on {listen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits two intervals, then until two rounds of every pod's samples were delivered, at most
/// [`WARM_UP_LIMIT`].
async fn warm_up(s: &Settings, counters: &Counters) {
    let started = Instant::now();
    let from = counters.samples.load(Ordering::Relaxed);
    let rounds = 2 * (s.pods * s.series) as u64;
    tokio::time::sleep(Duration::from_secs(2 * s.interval)).await;
    while counters.samples.load(Ordering::Relaxed) - from < rounds
        && started.elapsed() < WARM_UP_LIMIT
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
