//! What the on-disk spool costs a lane: one 2,000-sample batch of Istio-shaped series through
//! the in-memory queue (push, take, encode as the sender does) and through the spool (push =
//! encode + append, take = read back + CRC, finish = acknowledge and delete consumed
//! segments). Prints samples per CPU-second of each and their ratio, measured in one run.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, Criterion, Throughput};
use meshtap_remotewrite::encoder::RequestEncoder;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{SeriesId, SeriesLabels, Text};
use meshtap_sink::export::remote_write::queue::{Batch, BatchQueue, MemoryQueue, Outgoing};
use meshtap_sink::export::remote_write::spool_queue::SpoolQueue;
use meshtap_sink::ops::metrics::EndpointMetrics;
use meshtap_sink::spool::LaneSpool;

#[path = "shared/cpu_rate.rs"]
mod cpu_rate;

use cpu_rate::{per_cpu, rate};

const BATCH: usize = 2000;

/// `BATCH` samples of distinct series with Istio's 25 label names and a pod's target labels.
fn samples(ts: i64) -> Vec<ExportSample> {
    let names = [
        "connection_security_policy",
        "destination_app",
        "destination_canonical_revision",
        "destination_canonical_service",
        "destination_cluster",
        "destination_principal",
        "destination_service",
        "destination_service_name",
        "destination_service_namespace",
        "destination_version",
        "destination_workload",
        "destination_workload_namespace",
        "grpc_response_status",
        "instance",
        "job",
        "namespace",
        "pod",
        "reporter",
        "request_protocol",
        "response_code",
        "response_flags",
        "source_app",
        "source_canonical_revision",
        "source_canonical_service",
        "source_cluster",
        "source_principal",
        "source_version",
        "source_workload",
        "source_workload_namespace",
    ];
    (0..BATCH)
        .map(|i| {
            let pairs: Vec<(Text, Text)> = names
                .iter()
                .map(|n| {
                    let value = match *n {
                        "response_code" => ["200", "404", "503"][i % 3].to_owned(),
                        "destination_service" => {
                            format!("svc-{}.default.svc.cluster.local", i % 17)
                        }
                        "source_workload" => format!("client-{}", i / 3),
                        _ => format!("{n}-value"),
                    };
                    (Text::from(*n), Text::from(value.as_str()))
                })
                .collect();
            ExportSample {
                series: ExportSeries::reported(SeriesId {
                    name: Arc::from("istio_requests_total"),
                    labels: Arc::new(SeriesLabels::from_sorted(pairs)),
                    le: None,
                }),
                value: i as f64,
                timestamp_ms: ts,
            }
        })
        .collect()
}

/// One batch in and out of `queue`; a batch handed out as samples is encoded, as the
/// sender would. Returns the body length.
fn through(
    queue: &mut dyn BatchQueue,
    batch: Vec<ExportSample>,
    encoder: &mut RequestEncoder,
) -> usize {
    let evicted = queue.push(Batch::new(batch));
    assert!(evicted.is_empty());
    let len = match queue.take(BATCH).expect("the batch comes back") {
        Outgoing::Samples(batch) => encoder.encode(&batch.samples, &[]).len(),
        Outgoing::Spooled(spooled) => spooled.body.len(),
    };
    queue.finish();
    len
}

fn main() {
    let dir = std::env::temp_dir().join(format!("meshtap-spool-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let template = samples(1_700_000_000_000);
    let metrics = Arc::new(EndpointMetrics::new("bench", 1));
    let mut memory = MemoryQueue::new(BATCH * 4, true);
    let (lane_spool, _) = LaneSpool::open(&dir, 1 << 30, 16 << 20).expect("spool opens");
    let mut spool = SpoolQueue::new(lane_spool, vec![], BATCH * 4, BATCH, 0, metrics);
    let mut encoder = RequestEncoder::new();

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut group = c.benchmark_group("lane_queue");
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function("memory", |b| {
            b.iter(|| black_box(through(&mut memory, template.clone(), &mut encoder)))
        });
        group.bench_function("spool", |b| {
            b.iter(|| black_box(through(&mut spool, template.clone(), &mut encoder)))
        });
        group.finish();
    }
    c.final_summary();

    let budget = Duration::from_secs(2);
    let (_, memory_cpu) = rate(BATCH, budget, || {
        black_box(through(&mut memory, template.clone(), &mut encoder));
    });
    let mut body_len = 0;
    let (_, spool_cpu) = rate(BATCH, budget, || {
        body_len = through(&mut spool, template.clone(), &mut encoder);
    });
    println!(
        "lane queue memory {} M samples/CPU-s, spool {} M samples/CPU-s, spool/memory time ratio {}; {} body bytes per batch of {BATCH}",
        per_cpu(memory_cpu),
        per_cpu(spool_cpu),
        memory_cpu
            .zip(spool_cpu)
            .map_or_else(|| "n/a".to_owned(), |(m, s)| format!("{:.2}", m / s)),
        body_len,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
