//! The scrape stage's per-sample CPU, stage by stage, on a 2,000-series sidecar body (the one
//! `cargo xtask bench scrape` serves): `parse` (the full parser alone), `convert first` (a
//! target's first scrape: parse, relabel, intern, cache), `convert cached` (later scrapes:
//! quick split and cache hits, the body joined), `convert cached, chunks` (the same from the
//! body's 16 KiB chunks, as the scrape loop does) and `encode+snappy` (the remote-write body
//! of those samples).
//! Criterion reports each as samples per second (the inverse is the CPU time per sample).
//!
//! With `SCRAPE_CONVERT_ROUNDS=<n>` it runs `<n>` rounds of `convert cached, chunks` and of
//! `encode+snappy` instead, without criterion, for instruction counts: under
//! `valgrind --tool=callgrind` the difference between two round counts, divided by the rounds
//! and the samples, is the instructions per sample of those two stages.

#[path = "shared/sidecar_body.rs"]
mod sidecar_body;
#[path = "shared/sidecar_target.rs"]
mod sidecar_target;

use std::time::Duration;

use criterion::{black_box, Criterion, Throughput};
use meshtap_remotewrite::encoder::RequestEncoder;
use meshtap_sink::scrape::chunks::chunks_to_samples;
use meshtap_sink::scrape::convert::body_to_samples;
use meshtap_sink::scrape::series_cache::SeriesCache;
use meshtap_textformat::{Parser, TypedSamples};
use sidecar_body::sidecar_body;
use sidecar_target::sidecar_target;

const SERIES: usize = 2000;

/// `SCRAPE_CONVERT_ROUNDS`: a fixed number of rounds to run for instruction counts.
fn counted_rounds() -> Option<usize> {
    let rounds = std::env::var("SCRAPE_CONVERT_ROUNDS").ok()?;
    Some(
        rounds
            .parse()
            .expect("SCRAPE_CONVERT_ROUNDS is a number of rounds"),
    )
}

fn main() {
    let body = sidecar_body(0, SERIES).into_bytes();
    let target = sidecar_target();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let parse = || {
        let reader = TypedSamples::new(Parser::for_content_type(&body, None));
        black_box(reader.filter(Result::is_ok).count())
    };
    let first = || {
        let mut cache = SeriesCache::default();
        black_box(
            body_to_samples(&body, None, &target, 1, false, &mut cache)
                .samples
                .len(),
        )
    };
    let mut warm = SeriesCache::default();
    let samples = body_to_samples(&body, None, &target, 1, false, &mut warm).samples;
    warm.finish(1);
    let mut cached = || {
        let out = body_to_samples(&body, None, &target, 2, false, &mut warm);
        black_box(out.samples.len());
    };
    let chunks: Vec<prost::bytes::Bytes> = body
        .chunks(16 << 10)
        .map(prost::bytes::Bytes::copy_from_slice)
        .collect();
    let mut warm_chunks = SeriesCache::default();
    body_to_samples(&body, None, &target, 1, false, &mut warm_chunks);
    warm_chunks.finish(1);
    let mut from_chunks = || {
        let out = chunks_to_samples(&chunks, None, &target, 3, false, &mut warm_chunks);
        black_box(out.samples.len());
    };
    let mut encoder = RequestEncoder::new();
    let external = vec![("cluster".to_owned(), "bench".to_owned())];
    let mut encode = || {
        for batch in samples.chunks(2000) {
            black_box(encoder.encode(batch, &external).len());
        }
    };
    if let Some(rounds) = counted_rounds() {
        for _ in 0..rounds {
            from_chunks();
            encode();
        }
        println!(
            "{rounds} rounds of convert cached, chunks and encode+snappy, {} samples each",
            samples.len()
        );
        return;
    }
    let mut group = criterion.benchmark_group("scrape");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("parse", |b| b.iter(parse));
    group.bench_function("convert first", |b| b.iter(first));
    group.bench_function("convert cached", |b| b.iter(&mut cached));
    group.bench_function("convert cached, chunks", |b| b.iter(&mut from_chunks));
    group.bench_function("encode+snappy", |b| b.iter(&mut encode));
    group.finish();
}
