//! The spool queue's tests: the disk refusing writes, records joined and cut at request
//! boundaries, the forms on disk (as sent, or long-copy once the sender is behind) and the
//! snappy form sent.

use super::*;
use crate::export::remote_write::queue::test_batch as batch;

fn oldest(outgoing: Option<Outgoing>) -> (&'static str, i64) {
    match outgoing.expect("a batch") {
        Outgoing::Samples(b) => ("memory", b.oldest_ms().unwrap()),
        Outgoing::Spooled(s) => ("spool", s.meta.oldest_ms),
    }
}

/// A spooled queue in a fresh directory `meshtap-spool-<name>-<pid>` (1 MiB spool,
/// `segment_bytes`-byte segments, requests of `max_samples` samples), and its metrics.
fn queue_in(
    name: &str,
    segment_bytes: u64,
    max_samples: usize,
) -> (std::path::PathBuf, SpoolQueue, Arc<EndpointMetrics>) {
    let dir = std::env::temp_dir().join(format!("meshtap-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = LaneSpool::open(&dir, 1 << 20, segment_bytes).unwrap();
    let metrics = Arc::new(EndpointMetrics::new("rw", 1));
    let queue = SpoolQueue::new(spool, vec![], 100, max_samples, 0, metrics.clone());
    (dir, queue, metrics)
}

#[test]
fn batches_the_disk_refuses_wait_in_memory_in_order_until_it_takes_writes_again() {
    // One-byte segments: every append opens a new file.
    let (dir, mut queue, metrics) = queue_in("queue", 1, 1000);
    assert!(queue.push(batch(3, 1)).is_empty());
    assert_eq!(queue.queued_samples(), 3);
    assert!(metrics.lanes[0].spool_bytes.load(Ordering::Relaxed) > 0);

    // The directory vanishes: new files cannot be made (batch 1 was written, and its
    // body is still in memory: it is sent from there).
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(queue.push(batch(4, 2)).is_empty());
    assert!(queue.push(batch(5, 3)).is_empty());
    assert_eq!(
        metrics.spool_write_errors.load(Ordering::Relaxed),
        2,
        "one per push"
    );
    assert_eq!(queue.queued_samples(), 3 + 4 + 5);
    assert_eq!(oldest(queue.take(1000)), ("spool", 1));
    assert_eq!(metrics.spool_skipped_records.load(Ordering::Relaxed), 0);
    queue.finish();
    assert_eq!(oldest(queue.take(1000)), ("memory", 2));
    assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
    queue.finish();

    // The disk works again: what waited goes first, then the new batch, all on disk.
    std::fs::create_dir_all(&dir).unwrap();
    assert!(queue.push(batch(6, 4)).is_empty());
    assert_eq!(queue.queued_samples(), 5 + 6);
    // At most 5 samples per request: the records go one by one.
    assert_eq!(oldest(queue.take(5)), ("spool", 3));
    queue.finish();
    assert_eq!(oldest(queue.take(5)), ("spool", 4));
    queue.finish();
    assert!(queue.take(1000).is_none());
    // Beyond the memory capacity, the oldest waiting batch goes.
    std::fs::remove_dir_all(&dir).unwrap();
    let evicted: Vec<u64> = (0..3).flat_map(|i| queue.push(batch(40, 10 + i))).collect();
    assert_eq!(evicted, [40]);
    assert_eq!(queue.queued_samples(), 80);
    assert_eq!(queue.keep_for_restart(), Some((0, 80)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn consecutive_records_are_joined_up_to_the_request_size() {
    let (dir, mut queue, _) = queue_in("join", 1 << 16, 1000);
    for (n, ts) in [(3, 1), (4, 2), (5, 3)] {
        queue.push(batch(n, ts));
        assert!(matches!(queue.stored(), Stored::Spool(None)));
    }
    let Some(Outgoing::Spooled(first)) = queue.take(7) else {
        panic!("a spooled batch");
    };
    assert_eq!((first.meta.samples, first.meta.oldest_ms), (7, 1));
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&first.body)
        .unwrap();
    let request = <meshtap_remotewrite::proto::WriteRequest as prost::Message>::decode(&raw[..]);
    assert_eq!(request.unwrap().timeseries.len(), 7);
    queue.finish();
    assert_eq!(queue.queued_samples(), 5);
    assert_eq!(oldest(queue.take(7)), ("spool", 3));
    queue.finish();
    // Acknowledged together: a reopened spool holds nothing.
    drop(queue);
    let (_, recovered) = LaneSpool::open(&dir, 1 << 20, 1 << 16).unwrap();
    assert_eq!(recovered.records, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` scraped samples of 20 series with long label sets, as a histogram's buckets.
fn scraped_batch(n: usize, ts: i64) -> Batch {
    use meshtap_remotewrite::encoded_series::LabelInterner;
    use meshtap_remotewrite::sample::{ExportSample, ExportSeries};

    let mut interner = LabelInterner::default();
    let pod = "reviews-v1-7d8f9c6b5-x2k4q.default.svc.cluster.local".repeat(4);
    let samples = (0..n)
        .map(|i| {
            let le = (i % 20).to_string();
            let labels = [
                ("__name__", "istio_request_duration_milliseconds_bucket"),
                ("destination_workload", &pod[..]),
                ("le", &le[..]),
                ("source_workload", &pod[..]),
            ];
            ExportSample {
                series: ExportSeries::Encoded(std::sync::Arc::new(interner.series(labels))),
                value: i as f64,
                timestamp_ms: ts,
            }
        })
        .collect();
    Batch::new(samples)
}

/// The segment file of a lane directory with one.
fn segment_file(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "seg"))
        .expect("a segment")
}

#[test]
fn records_go_to_disk_as_sent_and_in_the_long_copy_form_once_the_sender_is_behind() {
    let (dir, mut queue, metrics) = queue_in("long", 1 << 20, 400);
    let sent_form = |ts| {
        RequestEncoder::new()
            .encode(&scraped_batch(400, ts).samples, &[])
            .to_vec()
    };
    // The sender keeps up (nothing waits): the record is written as it is sent.
    queue.push(scraped_batch(400, 0));
    let on_disk = std::fs::read(segment_file(&dir)).unwrap();
    assert_eq!(&on_disk[..4], b"MTS1");
    // Records pile up untaken until the next one would wait on disk.
    let mut pushed = 1;
    while !queue.spool.sender_behind() {
        assert!(pushed < 100, "the sender never fell behind");
        queue.push(scraped_batch(400, pushed));
        pushed += 1;
    }
    let before = std::fs::metadata(segment_file(&dir)).unwrap().len() as usize;
    queue.push(scraped_batch(400, pushed));
    let on_disk = std::fs::read(segment_file(&dir)).unwrap();
    assert_eq!(&on_disk[before..before + 4], b"MTS2");
    let written = on_disk.len() - before;
    let body = sent_form(pushed);
    assert!(
        written * 3 < body.len() * 2,
        "{written} bytes on disk for a {}-byte body",
        body.len()
    );
    // Every record goes as it is sent: from memory now, and read back after a restart.
    for ts in 0..=pushed {
        let Some(Outgoing::Spooled(taken)) = queue.take(400) else {
            panic!("a spooled batch");
        };
        assert_eq!(
            (&taken.body[..], taken.meta.form),
            (&sent_form(ts)[..], BodyForm::AsSent)
        );
        if ts < pushed {
            queue.finish();
        }
    }
    drop(queue);
    let (spool, recovered) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
    assert_eq!(recovered.records, 1, "the record in flight");
    let mut queue = SpoolQueue::new(spool, vec![], 100, 400, 0, metrics.clone());
    let Some(Outgoing::Spooled(read)) = queue.take(400) else {
        panic!("a spooled batch");
    };
    assert_eq!(read.body, body, "expanded when read back");
    queue.finish();
    // A record written as sent is read back as it is.
    drop(queue);
    let sent_form = sent_form(7);
    let (mut spool, _) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
    let meta = RecordMeta {
        samples: 400,
        oldest_ms: 7,
        newest_ms: 7,
        form: BodyForm::AsSent,
    };
    spool.append(meta, &sent_form).unwrap();
    drop(spool);
    let (spool, _) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
    let mut queue = SpoolQueue::new(spool, vec![], 100, 1000, 0, metrics.clone());
    let Some(Outgoing::Spooled(old)) = queue.take(1000) else {
        panic!("a spooled batch");
    };
    assert_eq!(old.body, sent_form);
    assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_body_that_does_not_expand_is_dropped_and_counted_and_the_next_one_is_sent() {
    let (dir, mut queue, metrics) = queue_in("unexpandable", 1 << 20, 1000);
    let meta = RecordMeta {
        samples: 5,
        oldest_ms: 1,
        newest_ms: 1,
        form: BodyForm::LongCopies,
    };
    // A long copy reaching before the body's start.
    queue
        .spool
        .append(meta, &[20, 0, b'x', 1, 0, 9, 19])
        .unwrap();
    queue.push(batch(3, 2));
    assert_eq!(oldest(queue.take(1000)), ("spool", 2));
    assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Samples in each request body the queue hands out, taking `max` at a time until empty.
fn request_sizes(queue: &mut SpoolQueue, max: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while let Some(outgoing) = queue.take(max) {
        let n = match &outgoing {
            Outgoing::Spooled(spooled) => {
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&spooled.body)
                    .unwrap();
                let request =
                    <meshtap_remotewrite::proto::WriteRequest as prost::Message>::decode(&raw[..]);
                request.unwrap().timeseries.len()
            }
            Outgoing::Samples(batch) => batch.len(),
        };
        assert_eq!(n, outgoing.len(), "the header's count matches the body");
        sizes.push(n);
        queue.finish();
    }
    sizes
}

#[test]
fn a_push_is_written_at_once_and_cut_at_the_requests_boundaries() {
    // One-byte segments: every write opens a new file.
    let (dir, mut queue, metrics) = queue_in("cut", 1, 10);
    for ts in 1..=3 {
        assert!(queue.push(batch(25, ts)).is_empty());
    }
    let segments = std::fs::read_dir(dir.join(".")).unwrap().count() - 1;
    assert_eq!(segments, 3, "one write per push (and the ack file)");
    assert_eq!(
        request_sizes(&mut queue, 10),
        [10; 7].into_iter().chain([5]).collect::<Vec<_>>()
    );
    // Pushes after the last request was taken start a new one.
    queue.push(batch(4, 4));
    queue.push(batch(8, 5));
    assert_eq!(request_sizes(&mut queue, 10), [10, 2]);
    // Batches waiting in memory while the disk refuses go a request at a time too.
    std::fs::remove_dir_all(&dir).unwrap();
    queue.push(batch(25, 6));
    assert_eq!(request_sizes(&mut queue, 10), [10, 10, 5]);
    assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
