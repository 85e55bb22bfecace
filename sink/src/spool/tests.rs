//! Tests of the spool's files: order, acknowledgement across restarts, crash recovery,
//! damage, the disk bound and lane hand-over.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lane_files::{reserve_blocks, segment_ids, segment_path};
use super::*;
use crate::ops::metrics::MetricsSection;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("meshtap-spool-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn meta(i: u32) -> RecordMeta {
    RecordMeta {
        samples: i + 1,
        oldest_ms: i64::from(i) * 10,
        newest_ms: i64::from(i) * 10 + 5,
        form: BodyForm::AsSent,
    }
}

fn body(i: u32) -> Vec<u8> {
    format!("body-{i}-{}", "x".repeat(i as usize * 7)).into_bytes()
}

fn open(dir: &Path, max: u64, segment: u64) -> (LaneSpool, Recovered) {
    LaneSpool::open(dir, max, segment).unwrap()
}

/// Takes every record, finishing each, and returns their bodies.
fn drain(spool: &mut LaneSpool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(batch) = spool.take().unwrap() {
        out.push(batch.body.to_vec());
        spool.finish().unwrap();
    }
    out
}

/// A new segment has its blocks reserved where the filesystem can (checked on a scratch file
/// first), while its length stays what was written, which is all that reads back.
#[test]
fn a_new_segment_reserves_its_blocks_and_keeps_its_written_length() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("reserve");
    fs::create_dir_all(&dir.0).unwrap();
    let scratch = fs::File::create(dir.0.join("scratch")).unwrap();
    if let Err(e) = reserve_blocks(&scratch, 1 << 20) {
        eprintln!("skipped: this filesystem reserves no blocks ({e})");
        return;
    }
    let (mut spool, _) = open(&dir.0.join("lane"), 8 << 20, 1 << 20);
    spool.append(meta(1), &body(1)).unwrap();
    let ids = segment_ids(&dir.0.join("lane")).unwrap();
    let segment = fs::metadata(segment_path(&dir.0.join("lane"), ids[0])).unwrap();
    assert_eq!(segment.len(), (record::HEADER_LEN + body(1).len()) as u64);
    assert!(
        segment.blocks() * 512 >= 1 << 20,
        "{} blocks reserved",
        segment.blocks()
    );
    assert_eq!(drain(&mut spool), vec![body(1)]);
}

#[test]
fn records_come_back_in_order_and_consumed_segments_go() {
    let dir = TempDir::new("order");
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 200);
    assert_eq!(recovered, Recovered::default());
    for i in 0..10 {
        assert!(spool.append(meta(i), &body(i)).unwrap().is_empty());
    }
    assert_eq!(spool.unread_samples(), (1..=10).sum::<u64>());
    assert_eq!(spool.next_oldest_ms(), Some(0));
    assert!(
        segment_ids(&dir.0).unwrap().len() > 2,
        "small segments roll"
    );
    let bodies = drain(&mut spool);
    assert_eq!(bodies, (0..10).map(body).collect::<Vec<_>>());
    assert_eq!(spool.unread_samples(), 0);
    // Only the segment still open for writing is left.
    assert_eq!(segment_ids(&dir.0).unwrap().len(), 1);
    assert_eq!(
        spool.bytes(),
        fs::metadata(segment_path(&dir.0, segment_ids(&dir.0).unwrap()[0]))
            .unwrap()
            .len()
    );
}

/// Records written while the sender is behind by more than the spool keeps in memory come
/// back in order, the first from memory and the rest read back from the disk (a record damaged
/// on disk after it was written shows which).
#[test]
fn records_past_the_memory_kept_are_read_back_in_order() {
    let dir = TempDir::new("fresh");
    let (mut spool, _) = open(&dir.0, 64 << 20, 16 << 20);
    let big = |i: u32| vec![i as u8; 300 << 10];
    for i in 0..6 {
        spool.append(meta(i), &big(i)).unwrap();
    }
    // Damage every record's first body byte on disk: a record read back is then skipped.
    let segment = segment_path(&dir.0, segment_ids(&dir.0).unwrap()[0]);
    let mut bytes = fs::read(&segment).unwrap();
    let record_len = record::HEADER_LEN + (300 << 10);
    for i in 0..6 {
        bytes[i * record_len + record::HEADER_LEN] ^= 0xff;
    }
    fs::write(&segment, bytes).unwrap();
    let bodies = drain(&mut spool);
    let kept = bodies.len();
    assert!((1..6).contains(&kept), "{kept} records came from memory");
    assert_eq!(bodies, (0..kept as u32).map(big).collect::<Vec<_>>());
    assert_eq!(
        spool.skipped().records,
        6 - kept as u64,
        "the others were read back"
    );
}

#[test]
fn a_restart_resends_from_the_first_record_not_acknowledged() {
    let dir = TempDir::new("restart");
    {
        let (mut spool, _) = open(&dir.0, 1 << 20, 120);
        for i in 0..6 {
            spool.append(meta(i), &body(i)).unwrap();
        }
        for _ in 0..2 {
            spool.take().unwrap().unwrap();
            spool.finish().unwrap();
        }
        // Handed out, never acknowledged: it must come again.
        assert_eq!(spool.take().unwrap().unwrap().body, body(2));
    }
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 120);
    assert_eq!((recovered.records, recovered.samples), (4, 3 + 4 + 5 + 6));
    spool.append(meta(6), &body(6)).unwrap();
    assert_eq!(drain(&mut spool), (2..7).map(body).collect::<Vec<_>>());
    drop(spool);
    let (_, recovered) = open(&dir.0, 1 << 20, 120);
    assert_eq!(recovered, Recovered::default(), "everything acknowledged");
}

/// With a fsync scheduler, `finish` leaves the acknowledgement to its next round: a kill
/// before it sends those records again (never fewer), and a round or a shutdown sync writes it.
#[test]
fn the_acknowledgement_is_written_by_the_next_sync_round() {
    let dir = TempDir::new("ack-round");
    let sync = SpoolSync::new(SyncPolicy::Interval);
    let recovered_after = |dir: &Path| open(dir, 1 << 20, 1 << 16).1.records;
    let (spool, _) = open(&dir.0, 1 << 20, 1 << 16);
    let mut spool = spool.with_sync(sync.clone());
    spool
        .append_all(
            (0..4)
                .map(|i| NewRecord::new(meta(i), body(i).into()))
                .collect(),
        )
        .unwrap();
    spool.take().unwrap().unwrap();
    spool.finish().unwrap();
    assert_eq!(
        recovered_after(&dir.0),
        4,
        "not written yet: a kill now sends it again"
    );
    assert!(sync.sync_now());
    assert_eq!(recovered_after(&dir.0), 3);
    spool.take().unwrap().unwrap();
    spool.finish().unwrap();
    spool.sync().unwrap();
    drop(spool);
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 1 << 16);
    assert_eq!(recovered.records, 2, "the shutdown sync wrote it");
    assert_eq!(drain(&mut spool), [body(2), body(3)]);
}

/// A lane tells the interval rounds about its unacknowledged records: a round fsyncs its
/// files while a record waits, and leaves them once every record is acknowledged.
#[test]
fn interval_rounds_follow_what_the_lane_has_not_had_acknowledged() {
    let dir = TempDir::new("unacked-rounds");
    let sync = SpoolSync::new(SyncPolicy::Interval);
    let counters = |sync: &SpoolSync| {
        let mut text = String::new();
        sync.render(&mut text);
        let value = |name: &str| -> u64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        (
            value("meshtap_sink_spool_syncs_total "),
            value("meshtap_sink_spool_sync_skipped_total "),
        )
    };
    let (spool, _) = open(&dir.0, 1 << 20, 1 << 16);
    let mut spool = spool.with_sync(sync.clone());
    spool.append(meta(0), &body(0)).unwrap();
    // Nothing has waited an hour: the segment and the lane directory are left for later.
    assert!(sync.interval_round(Duration::from_secs(3600)));
    assert_eq!(counters(&sync), (0, 2));
    // Any wait is long enough: they are synced.
    assert!(sync.interval_round(Duration::ZERO));
    assert_eq!(counters(&sync), (1, 2));
    spool.append(meta(1), &body(1)).unwrap();
    spool.take().unwrap().unwrap();
    spool.finish().unwrap();
    spool.take().unwrap().unwrap();
    spool.finish().unwrap();
    // Everything acknowledged: nothing is due however short the wait (segment and ack file).
    assert!(sync.interval_round(Duration::ZERO));
    assert_eq!(counters(&sync), (1, 4));
}

#[test]
fn a_record_cut_short_by_a_crash_is_cut_off_and_writing_goes_on() {
    let dir = TempDir::new("crash");
    {
        let (mut spool, _) = open(&dir.0, 1 << 20, 1 << 20);
        for i in 0..3 {
            spool.append(meta(i), &body(i)).unwrap();
        }
    }
    let segment = segment_path(&dir.0, segment_ids(&dir.0).unwrap()[0]);
    let whole = fs::metadata(&segment).unwrap().len();
    let partial = record::encode(meta(3), &body(3));
    OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&partial[..partial.len() - 3])
        .unwrap();
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 1 << 20);
    assert_eq!(recovered.records, 3);
    assert_eq!(recovered.discarded_bytes, partial.len() as u64 - 3);
    assert_eq!(recovered.corrupt_records, 0);
    assert_eq!(fs::metadata(&segment).unwrap().len(), whole);
    spool.append(meta(4), &body(4)).unwrap();
    assert_eq!(drain(&mut spool), [body(0), body(1), body(2), body(4)]);
}

#[test]
fn damage_on_disk_is_found_at_recovery_and_when_read_back() {
    let dir = TempDir::new("damage");
    let sizes: Vec<usize> = (0..4)
        .map(|i| record::encode(meta(i), &body(i)).len())
        .collect();
    {
        let (mut spool, _) = open(&dir.0, 1 << 20, 1 << 20);
        for i in 0..4 {
            spool.append(meta(i), &body(i)).unwrap();
        }
    }
    let segment = segment_path(&dir.0, segment_ids(&dir.0).unwrap()[0]);
    let flip = |at: usize| {
        let mut bytes = fs::read(&segment).unwrap();
        bytes[at] ^= 0x40;
        fs::write(&segment, bytes).unwrap();
    };
    // A byte of record 2's body: recovery keeps records 0 and 1 and cuts the rest off.
    flip(sizes[0] + sizes[1] + 40);
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 1 << 20);
    assert_eq!((recovered.records, recovered.corrupt_records), (2, 1));
    assert_eq!(recovered.discarded_bytes, (sizes[2] + sizes[3]) as u64);
    // Damage after recovery (record 1) is found when it is read: skipped and counted.
    flip(sizes[0] + 40);
    assert_eq!(drain(&mut spool), [body(0)]);
    assert_eq!(
        spool.skipped(),
        Skipped {
            records: 1,
            samples: 2
        }
    );
}

#[test]
fn past_max_bytes_the_oldest_segment_goes_and_its_unsent_samples_are_counted() {
    let dir = TempDir::new("bound");
    let record_len = record::encode(meta(0), &[0u8; 100]).len() as u64;
    // Two records per segment, at most three segments.
    let (mut spool, _) = open(&dir.0, 6 * record_len, 2 * record_len);
    let mut evicted = Vec::new();
    for i in 0..8 {
        let m = RecordMeta {
            samples: 10 + i,
            ..meta(i)
        };
        evicted.extend(spool.append(m, &[i as u8; 100]).unwrap());
    }
    // 8 records = 4 segments: the first (records 0 and 1) went.
    assert_eq!(evicted, [10 + 11]);
    assert!(spool.bytes() <= 6 * record_len);
    assert!(!spool.has_room());
    let first = spool.take().unwrap().unwrap();
    assert_eq!(first.body[..], [2u8; 100]);
    // A segment whose record is in flight may go too; finishing it afterwards is fine.
    for i in 8..10 {
        evicted.extend(spool.append(meta(i), &[0; 100]).unwrap());
    }
    assert_eq!(evicted, [21, 13]);
    spool.finish().unwrap();
    assert_eq!(spool.take().unwrap().unwrap().body[..], [4u8; 100]);
}

#[test]
fn lanes_gone_after_a_shrink_are_handed_to_the_remaining_ones() {
    let dir = TempDir::new("shrink");
    let config = SpoolConfig {
        dir: dir.0.clone(),
        max_bytes: ByteSize::mib(64),
        segment_bytes: ByteSize::mib(1),
        ..SpoolConfig::new(PathBuf::new())
    };
    {
        let mut lanes = config
            .open_lanes(SpoolKind::RemoteWrite, "mimir/eu", "http://m/push", 4)
            .unwrap();
        for (i, (spool, _)) in lanes.iter_mut().enumerate() {
            spool.append(meta(i as u32), &body(i as u32)).unwrap();
        }
    }
    let lanes = config
        .open_lanes(SpoolKind::RemoteWrite, "mimir/eu", "http://m/push", 2)
        .unwrap();
    let mut bodies: Vec<Vec<Vec<u8>>> = Vec::new();
    for (mut spool, recovered) in lanes {
        assert_eq!(recovered.records, 2);
        bodies.push(drain(&mut spool));
    }
    assert_eq!(bodies, [vec![body(0), body(2)], vec![body(1), body(3)]]);
    let endpoint_dirs: Vec<_> = fs::read_dir(dir.0.join("remote_write")).unwrap().collect();
    assert_eq!(endpoint_dirs.len(), 1);
    let name = endpoint_dirs[0].as_ref().unwrap().file_name();
    assert!(name.to_str().unwrap().starts_with("mimir_eu-"), "{name:?}");
}

#[test]
fn the_spool_of_an_endpoint_no_longer_configured_is_reported_while_it_holds_records() {
    let dir = TempDir::new("abandoned");
    let config = SpoolConfig {
        dir: dir.0.clone(),
        max_bytes: ByteSize::mib(64),
        segment_bytes: ByteSize::mib(1),
        ..SpoolConfig::new(PathBuf::new())
    };
    let old = ("mimir", "http://old/push");
    let mut lanes = config
        .open_lanes(SpoolKind::RemoteWrite, old.0, old.1, 1)
        .unwrap();
    let (spool, _) = &mut lanes[0];
    spool.append(meta(0), &body(0)).unwrap();
    drop(lanes);
    config
        .open_lanes(SpoolKind::RemoteWrite, "mimir", "http://new/push", 1)
        .unwrap();
    let abandoned = config.abandoned(SpoolKind::RemoteWrite, &[("mimir", "http://new/push")]);
    assert_eq!(
        abandoned,
        [config.endpoint_dir(SpoolKind::RemoteWrite, old.0, old.1)]
    );
    assert!(config.abandoned(SpoolKind::Loki, &[]).is_empty());
    assert!(
        config.abandoned(SpoolKind::RemoteWrite, &[old]).is_empty(),
        "an empty spool is not reported"
    );
}

#[test]
fn segments_written_after_a_drained_restart_are_not_taken_for_acknowledged() {
    let dir = TempDir::new("drained");
    {
        let (mut spool, _) = open(&dir.0, 1 << 20, 100);
        for i in 0..6 {
            spool.append(meta(i), &body(i)).unwrap();
        }
        drain(&mut spool);
    }
    // A run with nothing to send: its start removes the last, acknowledged segment.
    drop(open(&dir.0, 1 << 20, 100));
    assert!(segment_ids(&dir.0).unwrap().is_empty());
    {
        // An outage: records spooled, none sent.
        let (mut spool, _) = open(&dir.0, 1 << 20, 100);
        for i in 10..13 {
            spool.append(meta(i), &body(i)).unwrap();
        }
    }
    let (mut spool, recovered) = open(&dir.0, 1 << 20, 100);
    assert_eq!(recovered.records, 3);
    assert_eq!(drain(&mut spool), (10..13).map(body).collect::<Vec<_>>());
}

#[test]
fn records_handed_to_a_drained_lane_after_a_shrink_survive() {
    let dir = TempDir::new("shrink-drained");
    let config = SpoolConfig {
        dir: dir.0.clone(),
        max_bytes: ByteSize::mib(64),
        segment_bytes: ByteSize(64 << 10),
        ..SpoolConfig::new(PathBuf::new())
    };
    let open_lanes = |n| {
        config
            .open_lanes(SpoolKind::RemoteWrite, "rw", "http://m/push", n)
            .unwrap()
    };
    {
        let mut lanes = open_lanes(2);
        // Lane 0 sends a lot (its segments roll and are acknowledged); lane 1 is behind.
        for i in 0..6 {
            lanes[0].0.append(meta(i), &[7u8; 40 << 10]).unwrap();
        }
        drain(&mut lanes[0].0);
        lanes[1].0.append(meta(1), &body(1)).unwrap();
    }
    drop(open_lanes(2));
    let mut lanes = open_lanes(1);
    assert_eq!(lanes[0].1.records, 1);
    assert_eq!(drain(&mut lanes[0].0), [body(1)]);
}

#[test]
fn one_process_at_a_time_holds_a_spool_directory() {
    let dir = TempDir::new("lock");
    let config = SpoolConfig {
        dir: dir.0.clone(),
        max_bytes: ByteSize::mib(64),
        segment_bytes: ByteSize::mib(1),
        ..SpoolConfig::new(PathBuf::new())
    };
    let held = config.lock().unwrap();
    let err = config.lock().unwrap_err().to_string();
    assert!(err.contains("is locked by another process"), "{err}");
    drop(held);
    config.lock().unwrap();
}

#[test]
fn a_named_endpoint_never_takes_the_spool_of_an_unnamed_one_with_the_same_url() {
    let dir = TempDir::new("same-url");
    let config = SpoolConfig::new(dir.0.clone());
    let url = "http://m:9009/api/v1/push";
    let mut unnamed = config
        .open_lanes(SpoolKind::RemoteWrite, url, url, 1)
        .unwrap();
    unnamed[0].0.append(meta(1), &body(1)).unwrap();
    drop(unnamed);
    let named = config
        .open_lanes(SpoolKind::RemoteWrite, "primary", url, 1)
        .unwrap();
    assert_eq!(named[0].1.records, 0);
    drop(named);
    let unnamed = config
        .open_lanes(SpoolKind::RemoteWrite, url, url, 1)
        .unwrap();
    assert_eq!(
        unnamed[0].1.records, 1,
        "the unnamed endpoint keeps its records"
    );
}

/// An endpoint's spool directory is named by the XXH3 hash of its URL: a build whose hash
/// differed would not find the records an earlier one left (the value an independent XXH3
/// implementation gives).
#[test]
fn endpoint_directories_keep_their_names_across_builds() {
    let config = SpoolConfig::new(PathBuf::from("/spool"));
    let dir = config.endpoint_dir(
        SpoolKind::RemoteWrite,
        "prod",
        "http://127.0.0.1:9090/api/v1/write",
    );
    assert_eq!(dir, Path::new("/spool/remote_write/prod-25c0aa10"));
}
