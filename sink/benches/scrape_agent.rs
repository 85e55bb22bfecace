//! `cargo xtask bench scrape`: the sink's scrape stage beside every peer that runs here —
//! Prometheus 2.42 in agent mode and vmagent 1.79 (default and `-promscrape.streamParse=true`) —
//! and the sink with its disk spool, on the same loopback targets (15020-shaped bodies with
//! Istio's label sets), at the same interval and with the same external label, remote-writing to
//! one counting receiver. The contenders run one after another (each alone on the machine but
//! for the targets and the receiver), at each number of targets of the scale curve; contenders
//! joined by `+` run at the same time instead (each on targets and a receiver of its own), so
//! that a comparison of two lean processes is not drowned by the machine's drift between
//! runs: `sink+sink-spool` measures the spool's cost as a ratio within each round. Per
//! contender: CPU seconds (utime + stime from `/proc/<pid>/stat`) over the measured window, peak
//! RSS (`VmHWM`), samples delivered, scrapes served, CPU-µs per sample, bytes of RSS per active
//! series, compressed remote-write bytes per sample; then one table of the ratios to the sink.
//!
//! Settings (environment): `MESHTAP_SINK_BIN` (required, the release `meshtap-sink`),
//! `MESHTAP_SINK_BIN_BEFORE` (an earlier build, measured as `sink-before` and
//! `sink-spool-before` before the others),
//! `BENCH_TARGETS` (`200`; a comma list is a scale curve, e.g. `50,200,500`), `BENCH_SERIES`
//! (2000 per target), `BENCH_INTERVAL_SECONDS` (5), `BENCH_SECONDS` (60, after a warm-up of two
//! intervals and two rounds of samples delivered), `BENCH_CONTENDERS` (a comma list of `sink-before`, `sink-spool-before`, `sink`, `sink-spool`, `agent`,
//! `vmagent`, `vmagent-stream`, `transport`; default all, the earlier build's when it is given;
//! `a+b` runs a and b at the same time).
//! `transport` (`scrape_peers/transport_only.rs`) is the bench binary itself, fetching
//! the bodies and posting pre-encoded requests of the same samples, nothing else — the CPU per
//! sample no scraper can go below here. `BENCH_ROUNDS` (1) runs the contenders that many times in
//! turn at each number of targets and compares each contender's median round (by CPU per
//! sample): on a shared machine the load drifts over minutes, and rounds in turn spread it
//! over every contender instead of charging it to whichever ran at the wrong time. Contenders
//! that ran beside the sink also get the median of their per-round ratios to it. Figures are
//! comparable within one run only.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

#[path = "scrape_peers/contenders.rs"]
mod contenders;
#[path = "scrape_peers/measure.rs"]
mod measure;
#[path = "shared/sidecar_body.rs"]
mod sidecar_body;
#[path = "scrape_peers/transport_only.rs"]
mod transport_only;

use contenders::{Contender, Launch};
use measure::Counters;
use sidecar_body::sidecar_body;

struct Settings {
    targets: Vec<usize>,
    series: usize,
    interval: u64,
    seconds: u64,
    rounds: usize,
    /// Groups of contenders, each group measured at the same time.
    groups: Vec<Vec<Contender>>,
    sink_bin: PathBuf,
    sink_bin_before: Option<PathBuf>,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    value.split(',').map(|v| v.trim().to_owned()).collect()
}

fn number(name: &str, value: &str) -> u64 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
}

fn settings() -> Settings {
    let sink_bin = std::env::var_os("MESHTAP_SINK_BIN")
        .map(PathBuf::from)
        .expect("MESHTAP_SINK_BIN: run through `cargo xtask bench scrape`");
    let one = |name: &str, default: &str| number(name, &env_list(name, default)[0]);
    let mut targets: Vec<usize> = env_list("BENCH_TARGETS", "200")
        .iter()
        .map(|t| number("BENCH_TARGETS", t) as usize)
        .collect();
    targets.sort_unstable();
    let sink_bin_before = std::env::var_os("MESHTAP_SINK_BIN_BEFORE").map(PathBuf::from);
    let all: Vec<&str> = contenders::ALL.iter().map(|c| c.key()).collect();
    let default: Vec<&str> = contenders::ALL
        .iter()
        .filter(|c| sink_bin_before.is_some() || !c.is_before())
        .map(|c| c.key())
        .collect();
    let find = |key: &str| {
        *contenders::ALL
            .iter()
            .find(|c| c.key() == key)
            .unwrap_or_else(|| panic!("unknown contender {key:?} (known: {all:?})"))
    };
    let groups = env_list("BENCH_CONTENDERS", &default.join(","))
        .iter()
        .map(|group| {
            let members: Vec<Contender> = group.split('+').map(|k| find(k.trim())).collect();
            let mut keys: Vec<&str> = members.iter().map(|c| c.key()).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(
                keys.len(),
                members.len(),
                "{group:?} names a contender twice"
            );
            members
        })
        .collect();
    Settings {
        targets,
        series: one("BENCH_SERIES", "2000") as usize,
        interval: one("BENCH_INTERVAL_SECONDS", "5"),
        seconds: one("BENCH_SECONDS", "60"),
        rounds: one("BENCH_ROUNDS", "1").max(1) as usize,
        groups,
        sink_bin,
        sink_bin_before,
    }
}

/// One contender's run at one number of targets.
#[derive(Clone)]
struct Row {
    targets: usize,
    contender: Contender,
    round: usize,
    /// The contenders that ran at the same time (itself included).
    group: Vec<Contender>,
    cpu_seconds: f64,
    samples: u64,
    scrapes: u64,
    bytes: u64,
    peak_rss: u64,
    active_series: f64,
}

impl Row {
    fn cpu_us_per_sample(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.samples.max(1) as f64
    }

    fn rss_per_series(&self) -> f64 {
        self.peak_rss as f64 / self.active_series
    }

    /// The contender's title, marked `*` when it ran beside others.
    fn label(&self) -> String {
        match self.group.len() {
            1 => self.contender.title().to_owned(),
            _ => format!("{} *", self.contender.title()),
        }
    }

    fn print(&self) {
        println!(
            "{:>7} {:<32} {:>8.2} {:>10} {:>8} {:>9.1} {:>10.3} {:>9.1} {:>9.0} {:>9.1}",
            self.targets,
            self.label(),
            self.cpu_seconds,
            self.samples,
            self.scrapes,
            self.samples as f64 / self.scrapes.max(1) as f64,
            self.cpu_us_per_sample(),
            self.peak_rss as f64 / (1 << 20) as f64,
            self.rss_per_series(),
            self.bytes as f64 / self.samples.max(1) as f64,
        );
    }
}

const HEADER: &str = "targets contender (* beside others)        CPU s    samples  scrapes smp/scrp CPU-us/smp  RSS MiB B/series body B/smp";

fn main() {
    if transport_only::run_if_asked() {
        return;
    }
    let s = settings();
    assert!(
        s.series >= 23,
        "BENCH_SERIES must hold one Istio label set (23 samples)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(run(&s));
    let medians = median_rounds(rows.clone());
    if s.rounds > 1 {
        println!(
            "\nmedian round of {} (by CPU per sample) of each contender",
            s.rounds
        );
        println!("{HEADER}");
        for row in &medians {
            row.print();
        }
    }
    print_ratios(&medians, &rows);
}

/// Each contender's median round by CPU per sample (the lower middle one of an even number)
/// in each group it ran in, in the order the contenders ran.
fn median_rounds(rows: Vec<Row>) -> Vec<Row> {
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|g| {
            g[0].targets == row.targets
                && g[0].contender == row.contender
                && g[0].group == row.group
        }) {
            Some(group) => group.push(row),
            None => groups.push(vec![row]),
        }
    }
    groups
        .into_iter()
        .map(|mut group| {
            group.sort_by(|a, b| a.cpu_us_per_sample().total_cmp(&b.cpu_us_per_sample()));
            group.swap_remove((group.len() - 1) / 2)
        })
        .collect()
}

/// Loopback targets and a receiver of their own, for one contender of a group.
struct Slot {
    counters: Arc<Counters>,
    targets: Vec<std::net::SocketAddr>,
    write: std::net::SocketAddr,
}

async fn run(s: &Settings) -> Vec<Row> {
    let most = *s.targets.last().expect("at least one number of targets");
    let bodies: Vec<Bytes> = (0..most)
        .map(|t| Bytes::from(sidecar_body(t, s.series)))
        .collect();
    let widest = s.groups.iter().map(Vec::len).max().unwrap_or(1);
    let mut slots = Vec::new();
    for _ in 0..widest {
        let counters = Arc::new(Counters::default());
        let targets = measure::serve_targets(bodies.clone(), &counters).await;
        let write = measure::serve_receiver(&counters).await;
        slots.push(Slot {
            counters,
            targets,
            write,
        });
    }
    println!(
        "scrape bench: {:?} targets x {} series, {} s interval, {} s measured after a warm-up of at least {} s and two rounds of samples, contenders one at a time (those joined by + together), {} round(s) in turn",
        s.targets,
        s.series,
        s.interval,
        s.seconds,
        2 * s.interval,
        s.rounds
    );
    println!("{HEADER}");
    let mut rows = Vec::new();
    for &n in &s.targets {
        for round in 0..s.rounds {
            for group in &s.groups {
                for row in measure_group(s, group, &slots, n, round).await {
                    row.print();
                    rows.push(row);
                }
            }
        }
    }
    rows
}

/// Runs `group`'s contenders at the same time, each on a slot of its own (turned every round),
/// and measures them over the same window.
async fn measure_group(
    s: &Settings,
    group: &[Contender],
    slots: &[Slot],
    n: usize,
    round: usize,
) -> Vec<Row> {
    let ticks = measure::clock_ticks();
    let mut running = Vec::new();
    // Slots turn by one every round: whatever favours one slot's targets and receiver in the
    // bench process falls on each contender of the group in turn.
    for (i, &contender) in group.iter().enumerate() {
        let slot = &slots[(i + round) % group.len()];
        let dir = std::env::temp_dir().join(format!(
            "meshtap-bench-scrape-{}-{}",
            std::process::id(),
            contender.key()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let child = contender.start(&Launch {
            dir: &dir,
            targets: &slot.targets[..n],
            write: slot.write,
            interval: s.interval,
            series: s.series,
            sink_bin: &s.sink_bin,
            sink_bin_before: s.sink_bin_before.as_ref(),
        });
        running.push((contender, slot, child, dir));
    }
    for (_, slot, _, _) in &running {
        warm_up(s, n, &slot.counters).await;
    }
    let snapshot = |pid: u32, counters: &Counters| {
        (
            measure::cpu_seconds(pid, ticks),
            counters.samples.load(Ordering::Relaxed),
            counters.scrapes.load(Ordering::Relaxed),
            counters.bytes.load(Ordering::Relaxed),
        )
    };
    let before: Vec<_> = running
        .iter()
        .map(|(_, slot, child, _)| snapshot(child.id(), &slot.counters))
        .collect();
    tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    let after: Vec<_> = running
        .iter()
        .map(|(_, slot, child, _)| snapshot(child.id(), &slot.counters))
        .collect();
    let mut rows = Vec::new();
    for ((contender, _, mut child, dir), (b, a)) in
        running.into_iter().zip(before.iter().zip(&after))
    {
        let peak_rss = measure::peak_rss_bytes(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(Row {
            targets: n,
            contender,
            round,
            group: group.to_vec(),
            cpu_seconds: a.0 - b.0,
            samples: a.1 - b.1,
            scrapes: a.2 - b.2,
            bytes: a.3 - b.3,
            peak_rss,
            active_series: (n * s.series) as f64,
        });
    }
    // Let the last scrapes and writes of these contenders end before the next ones start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    rows
}

/// Waits two intervals, and then until the contender has delivered two rounds of every
/// target's samples (a loaded peer takes longer to create its series), at most
/// [`WARM_UP_LIMIT`].
async fn warm_up(s: &Settings, targets: usize, counters: &Counters) {
    let started = std::time::Instant::now();
    let from = counters.samples.load(Ordering::Relaxed);
    let rounds = 2 * (targets * s.series) as u64;
    tokio::time::sleep(Duration::from_secs(2 * s.interval)).await;
    while counters.samples.load(Ordering::Relaxed) - from < rounds
        && started.elapsed() < WARM_UP_LIMIT
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The longest warm-up; a contender still behind then is measured as it is.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

/// Each contender's CPU per sample and RSS per series over the sink's at the same number of
/// targets, and its CPU per sample over the Prometheus agent's (the yardstick) when the
/// agent ran; for a contender that ran beside the sink, also the median (and range) of its
/// per-round CPU ratio to the sink of the same round.
fn print_ratios(medians: &[Row], rows: &[Row]) {
    println!("\nratios at the same number of targets: CPU per sample and peak RSS over the sink's (median rounds), CPU per sample over the agent's; beside the sink: per-round CPU ratio to it, median [range], mean");
    println!(
        "{:>7} {:<32} {:>10} {:>10} {:>12}  CPU x sink beside it",
        "targets", "contender", "CPU x", "RSS x", "CPU x agent"
    );
    // A contender's figures for the ratios: from its runs alone, if it had any.
    let find = |targets: usize, contender: Contender| {
        let mut runs = medians
            .iter()
            .filter(|r| r.targets == targets && r.contender == contender);
        let first = runs.next();
        first.and_then(|f| {
            std::iter::once(f)
                .chain(runs)
                .find(|r| r.group.len() == 1)
                .or(Some(f))
        })
    };
    for row in medians {
        let Some(sink) = find(row.targets, Contender::Sink) else {
            continue;
        };
        let over_agent = find(row.targets, Contender::Agent).map_or(String::from("-"), |agent| {
            format!("{:.3}", row.cpu_us_per_sample() / agent.cpu_us_per_sample())
        });
        println!(
            "{:>7} {:<32} {:>10.2} {:>10.2} {:>12}  {}",
            row.targets,
            row.label(),
            row.cpu_us_per_sample() / sink.cpu_us_per_sample(),
            row.peak_rss as f64 / sink.peak_rss as f64,
            over_agent,
            paired_ratio(rows, row)
        );
    }
}

/// The median (lower middle), range and mean of `of`'s per-round CPU ratio to the sink that
/// ran at the same time, or `-` when they never ran together. With a handful of rounds the mean
/// uses every round; the median, kept for comparison with earlier runs, only one.
fn paired_ratio(rows: &[Row], of: &Row) -> String {
    let mut ratios: Vec<f64> = rows
        .iter()
        .filter(|r| r.targets == of.targets && r.contender == of.contender && r.group == of.group)
        .filter(|r| r.contender != Contender::Sink && r.group.contains(&Contender::Sink))
        .filter_map(|r| {
            let sink = rows.iter().find(|s| {
                s.contender == Contender::Sink && s.round == r.round && s.group == r.group
            })?;
            Some(r.cpu_us_per_sample() / sink.cpu_us_per_sample())
        })
        .collect();
    if ratios.is_empty() {
        return String::from("-");
    }
    ratios.sort_by(f64::total_cmp);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    format!(
        "{:.3} [{:.3}-{:.3}] of {}, mean {mean:.3}",
        ratios[(ratios.len() - 1) / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        ratios.len()
    )
}
