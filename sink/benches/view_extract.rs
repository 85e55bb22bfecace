//! The live view's CPU per scraped sample on the 2,000-series sidecar body `cargo xtask bench
//! scrape` serves: `scraped` (one target's scrape shown to the view, as the scrape loop does
//! after its first scrapes) and `summary of 200 targets` (the window's totals over 200 targets'
//! histories, which the trend line computes every `view.trend_step`).
//! Criterion reports `scraped` as samples per second.
//!
//! With `VIEW_BENCH_ONCE=1` it runs a fixed workload once instead (`measured_view_work`: 20
//! scrapes of each of 10 targets and 5 summaries), for an instruction count under
//! `valgrind --tool=callgrind --toggle-collect='*measured_view_work*'`.

#[path = "shared/sidecar_body.rs"]
mod sidecar_body;
#[path = "shared/sidecar_target.rs"]
mod sidecar_target;

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, Criterion, Throughput};
use meshtap_remotewrite::sample::ExportSample;
use meshtap_sink::ops::metrics::SinkMetrics;
use meshtap_sink::scrape::convert::body_to_samples;
use meshtap_sink::scrape::series_cache::SeriesCache;
use meshtap_sink::view::{LiveView, ViewConfig, ViewTap};
use sidecar_body::sidecar_body;
use sidecar_target::sidecar_target;

const SERIES: usize = 2000;
const INTERVAL_MS: i64 = 5_000;

/// One target's scraped samples (as a cached scrape queues them), each target its own body
/// and series cache.
fn scraped_samples(target_index: usize) -> (SeriesCache, Vec<ExportSample>) {
    let body = sidecar_body(target_index, SERIES).into_bytes();
    let mut cache = SeriesCache::default();
    body_to_samples(&body, None, &sidecar_target(), 1, false, &mut cache);
    cache.finish(1);
    let samples = body_to_samples(&body, None, &sidecar_target(), 2, false, &mut cache).samples;
    (cache, samples)
}

fn view() -> (Arc<LiveView>, ViewTap) {
    let view = Arc::new(LiveView::new(
        &ViewConfig::default(),
        Arc::new(SinkMetrics::default()),
    ));
    (view.clone(), ViewTap::new(view))
}

fn url(target: usize) -> String {
    format!(
        "http://10.1.{}.{}:15020/stats/prometheus",
        target / 250,
        target % 250
    )
}

/// The fixed workload of the callgrind count: 20 scrapes of each of `targets`, then 5
/// summaries.
#[inline(never)]
fn measured_view_work(view: &LiveView, tap: &ViewTap, targets: &[Vec<ExportSample>]) -> usize {
    for round in 0..20 {
        for (i, samples) in targets.iter().enumerate() {
            tap.scraped(&url(i), round * INTERVAL_MS, samples);
        }
    }
    (0..5).map(|_| view.summary().services.len()).sum()
}

fn run_once() {
    let kept: Vec<_> = (0..10).map(scraped_samples).collect();
    let targets: Vec<_> = kept.iter().map(|(_, samples)| samples.clone()).collect();
    let (view, tap) = view();
    let services = measured_view_work(&view, &tap, &targets);
    println!(
        "{} scrapes of {} samples, {services} service rows",
        20 * targets.len(),
        targets[0].len()
    );
}

fn main() {
    if std::env::var_os("VIEW_BENCH_ONCE").is_some() {
        return run_once();
    }
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let (_cache, samples) = scraped_samples(0);

    let (_one, tap) = view();
    let mut scrape_ms = 0;
    let mut scraped = || {
        scrape_ms += INTERVAL_MS;
        tap.scraped(&url(0), scrape_ms, &samples);
    };

    let (many, many_tap) = view();
    for round in 0..7 {
        for target in 0..200 {
            many_tap.scraped(&url(target), round * INTERVAL_MS, &samples);
        }
    }
    let summary = || black_box(many.summary().services.len());

    let mut group = criterion.benchmark_group("view");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("scraped", |b| b.iter(&mut scraped));
    group.throughput(Throughput::Elements(1));
    group.bench_function("summary of 200 targets", |b| b.iter(summary));
    group.finish();
}
