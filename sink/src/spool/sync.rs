//! When spooled bytes reach the disk itself: `spool.sync` is `always` (a report is answered only
//! after an fsync that covers its records, shared by every write of the same moment: group
//! commit) or `interval` (rounds every half `spool.sync_interval`, nobody waits).
//!
//! Either way a record is written to the operating system before its append returns, so a
//! crash of the process (SIGKILL, OOM kill) loses nothing appended; the policy decides only what
//! a crash of the machine (power loss, kernel panic) may lose: nothing with `always`, at most
//! the last interval with `interval`. An `interval` round fsyncs a lane's files only when one
//! of its records has waited half an interval for the endpoint's acknowledgement
//! ([`super::unacked`]): a record written half an interval or more before a round is then
//! either delivered or on the disk after it, and rounds come every half interval, so what a
//! machine crash can take was written less than one interval before it. While the endpoint
//! keeps up nothing is fsynced at all.
//!
//! Owns the set of files written since the last fsync and the rounds that persist them. Spool
//! files register themselves here after writing ([`SpoolSync::written`]); small overwrites
//! that need not happen at once (a lane's acknowledgement) are handed here instead
//! ([`SpoolSync::write_later`]) and written by the next round, on its blocking thread, before
//! its fsyncs. Beyond those bytes this module writes nothing and knows nothing about records.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::unacked::Unacked;
use crate::ops::metrics::{header, MetricsSection};

/// `spool.sync`: when written records are flushed to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Records not yet delivered reach the disk within `spool.sync_interval` of being written
    /// (a machine crash loses at most the last interval's); a report is answered once its
    /// records are written to the operating system (safe from a process crash).
    #[default]
    Interval,
    /// Before a report is answered: its records are on the disk (fsync, group-committed).
    Always,
}

/// One fsync round: the files written before it started, persisted together.
#[derive(Debug)]
pub struct SyncRound {
    /// `None` while running, then whether every file was persisted.
    done: watch::Sender<Option<bool>>,
}

impl SyncRound {
    fn new() -> Arc<SyncRound> {
        Arc::new(SyncRound {
            done: watch::Sender::new(None),
        })
    }

    /// Waits for the round; true when every file it covered reached the disk.
    pub async fn persisted(&self) -> bool {
        let mut rx = self.done.subscribe();
        let outcome = rx.wait_for(Option::is_some).await;
        outcome.is_ok_and(|done| done.unwrap_or(false))
    }
}

/// A file written since it was last persisted, with the lane whose records it holds.
#[derive(Debug)]
struct DirtyFile {
    path: PathBuf,
    file: File,
    lane: Arc<Unacked>,
}

/// Files written since the last round started (or left unsynced by it), and the round that
/// will persist them.
#[derive(Debug)]
struct Dirty {
    files: Vec<DirtyFile>,
    /// Bytes the round writes at the start of a file (the latest per file) before its fsyncs.
    overwrites: Vec<Overwrite>,
    round: Arc<SyncRound>,
}

/// Bytes handed to [`SpoolSync::write_later`].
#[derive(Debug)]
struct Overwrite {
    path: PathBuf,
    file: File,
    bytes: Vec<u8>,
    lane: Arc<Unacked>,
}

/// The spool's fsync scheduler, shared by every lane of every endpoint.
#[derive(Debug)]
pub struct SpoolSync {
    policy: SyncPolicy,
    dirty: Mutex<Dirty>,
    /// Held for a whole round: rounds write and persist in the order they started.
    rounds_in_order: Mutex<()>,
    wake: Notify,
    errors: AtomicU64,
    /// Rounds that persisted at least one file.
    rounds: AtomicU64,
    /// Files an `interval` round left unsynced, their records all acknowledged or young.
    skipped: AtomicU64,
}

impl SpoolSync {
    pub fn new(policy: SyncPolicy) -> Arc<SpoolSync> {
        Arc::new(SpoolSync {
            policy,
            dirty: Mutex::new(Dirty {
                files: Vec::new(),
                overwrites: Vec::new(),
                round: SyncRound::new(),
            }),
            rounds_in_order: Mutex::new(()),
            wake: Notify::new(),
            errors: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        })
    }

    /// Notes that `file` (at `path`, a segment, an ack file or a lane directory) was written
    /// with records of the lane whose acknowledgements `lane` follows. With `always`, returns
    /// the round whose completion means the write is on the disk.
    pub fn written(&self, path: &Path, file: &File, lane: &Arc<Unacked>) -> Option<Arc<SyncRound>> {
        let mut dirty = self.dirty.lock().expect("spool sync lock");
        if !dirty.files.iter().any(|d| d.path == path) {
            match file.try_clone() {
                Ok(clone) => dirty.files.push(DirtyFile {
                    path: path.to_owned(),
                    file: clone,
                    lane: lane.clone(),
                }),
                Err(e) => {
                    // Without a handle the round cannot cover this file: fail the round.
                    tracing::error!(path = %path.display(), error = %e, "spool: cannot keep a handle for fsync");
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    dirty.round.done.send_replace(Some(false));
                    dirty.round = SyncRound::new();
                }
            }
        }
        let round = dirty.round.clone();
        drop(dirty);
        match self.policy {
            SyncPolicy::Always => {
                self.wake.notify_one();
                Some(round)
            }
            SyncPolicy::Interval => None,
        }
    }

    /// Hands over `bytes` to be written at the start of `file` (at `path`) by the next round,
    /// replacing bytes handed over earlier for the same file and not yet written; the round
    /// persists the file too. Nobody waits: with `always` the round starts at once, with
    /// `interval` at the next tick.
    pub fn write_later(&self, path: &Path, file: &File, bytes: &[u8], lane: &Arc<Unacked>) {
        let mut dirty = self.dirty.lock().expect("spool sync lock");
        if let Some(waiting) = dirty.overwrites.iter_mut().find(|o| o.path == path) {
            waiting.bytes.clear();
            waiting.bytes.extend_from_slice(bytes);
        } else {
            match file.try_clone() {
                Ok(file) => dirty.overwrites.push(Overwrite {
                    path: path.to_owned(),
                    file,
                    bytes: bytes.to_vec(),
                    lane: lane.clone(),
                }),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "spool: cannot keep a handle to write later");
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        drop(dirty);
        if self.policy == SyncPolicy::Always {
            self.wake.notify_one();
        }
    }

    /// fsync failures since start (`meshtap_sink_spool_sync_errors_total`).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// A file was deleted: no round needs to persist it (nor keep it open).
    pub fn forget(&self, path: &Path) {
        let mut dirty = self.dirty.lock().expect("spool sync lock");
        dirty.files.retain(|d| d.path != path);
    }

    /// Persists everything written since the last round; returns whether all of it reached
    /// the disk. Called by [`SpoolSync::run`] with `always`, and at shutdown.
    pub fn sync_now(&self) -> bool {
        self.round(|_| true)
    }

    /// An `interval` round: persists the files of lanes with a record that has waited `grace`
    /// or more for its acknowledgement at the round's start; the others stay registered for
    /// the next round.
    pub(super) fn interval_round(&self, grace: Duration) -> bool {
        let start = Instant::now();
        self.round(|lane| lane.waited(start, grace))
    }

    /// Writes the overwrites handed over, then fsyncs the written files whose lane is `due`.
    fn round(&self, due: impl Fn(&Unacked) -> bool) -> bool {
        let _in_order = self.rounds_in_order.lock().expect("spool rounds lock");
        let (mut files, overwrites, round) = {
            let mut dirty = self.dirty.lock().expect("spool sync lock");
            let files = std::mem::take(&mut dirty.files);
            let overwrites = std::mem::take(&mut dirty.overwrites);
            (
                files,
                overwrites,
                std::mem::replace(&mut dirty.round, SyncRound::new()),
            )
        };
        let mut ok = true;
        for Overwrite {
            path,
            file,
            bytes,
            lane,
        } in overwrites
        {
            match file.write_all_at(&bytes, 0) {
                Ok(()) if files.iter().any(|d| d.path == path) => {}
                Ok(()) => files.push(DirtyFile { path, file, lane }),
                Err(e) => {
                    ok = false;
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(path = %path.display(), error = %e, "spool: write failed");
                }
            }
        }
        let (files, later): (Vec<DirtyFile>, Vec<DirtyFile>) =
            files.into_iter().partition(|d| due(&d.lane));
        self.keep_for_later(later);
        for DirtyFile { path, file, .. } in &files {
            if let Err(e) = file.sync_data() {
                ok = false;
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %path.display(), error = %e, "spool: fsync failed");
            }
        }
        if !files.is_empty() {
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
        round.done.send_replace(Some(ok));
        ok
    }

    /// Registers again files a round left unsynced (unless written and registered since).
    fn keep_for_later(&self, later: Vec<DirtyFile>) {
        if later.is_empty() {
            return;
        }
        self.skipped
            .fetch_add(later.len() as u64, Ordering::Relaxed);
        let mut dirty = self.dirty.lock().expect("spool sync lock");
        for file in later {
            if !dirty.files.iter().any(|d| d.path == file.path) {
                dirty.files.push(file);
            }
        }
    }

    /// Runs rounds until `stop` turns true: at once after a write with `always` (writes that
    /// come during a round wait for the next one), every half `interval` otherwise (persisting
    /// the lanes with a record unacknowledged for half an interval: see the module doc).
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let half = interval / 2;
        loop {
            let wait = async {
                match self.policy {
                    SyncPolicy::Always => self.wake.notified().await,
                    SyncPolicy::Interval => tokio::time::sleep(half).await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let this = self.clone();
            let round = move || match this.policy {
                SyncPolicy::Always => this.sync_now(),
                SyncPolicy::Interval => this.interval_round(half),
            };
            if tokio::task::spawn_blocking(round).await.is_err() {
                return;
            }
        }
    }
}

impl MetricsSection for SpoolSync {
    fn render(&self, out: &mut String) {
        let counters = [
            (
                "meshtap_sink_spool_syncs_total",
                "fsync rounds that flushed spool files to the disk.",
                self.rounds.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_spool_sync_skipped_total",
                "Spool files an interval round left unsynced because every record in them was acknowledged, or written less than half a sync_interval before.",
                self.skipped.load(Ordering::Relaxed),
            ),
            (
                "meshtap_sink_spool_worker_handoffs_total",
                "Spool file operations, and waits for a lane's lock, that handed their worker's tasks to another thread first (another spool operation was in flight, or the lock was taken).",
                super::disk_io::handed_over(),
            ),
            (
                "meshtap_sink_spool_sync_errors_total",
                "fsync calls on spool files (and acknowledgement writes left to fsync rounds) that failed.",
                self.errors(),
            ),
        ];
        for (name, help, value) in counters {
            header(out, name, "counter", help);
            out.push_str(&format!("{name} {value}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn always_answers_after_a_round_that_covers_the_write() {
        let dir = std::env::temp_dir().join(format!("meshtap-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut file = File::create(&path).unwrap();
        let sync = SpoolSync::new(SyncPolicy::Always);
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(sync.clone().run(Duration::from_secs(3600), stop));
        file.write_all(b"x").unwrap();
        let lane = Arc::new(Unacked::default());
        let first = sync
            .written(&path, &file, &lane)
            .expect("always gives a round");
        file.write_all(b"y").unwrap();
        let second = sync
            .written(&path, &file, &lane)
            .expect("always gives a round");
        assert!(first.persisted().await);
        assert!(second.persisted().await);
        assert_eq!(sync.errors(), 0);
        stop_tx.send_replace(true);
        task.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interval_gives_no_round_to_wait_for() {
        let dir = std::env::temp_dir().join(format!("meshtap-sync-i-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = File::create(&path).unwrap();
        let sync = SpoolSync::new(SyncPolicy::Interval);
        assert!(sync.written(&path, &file, &Arc::default()).is_none());
        assert!(sync.sync_now());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An interval round fsyncs only the files of lanes with a record waiting half an
    /// interval; the others stay registered and are fsynced once one of their records waits
    /// that long, and a deleted file is forgotten.
    #[test]
    fn interval_rounds_fsync_only_lanes_whose_records_wait() {
        let dir = std::env::temp_dir().join(format!("meshtap-sync-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = |name: &str| {
            let path = dir.join(name);
            (File::create(&path).unwrap(), path)
        };
        let ((delivered, delivered_path), (waiting, waiting_path)) = (open("a"), open("b"));
        let (gone, gone_path) = open("c");
        let sync = SpoolSync::new(SyncPolicy::Interval);
        let grace = Duration::from_millis(500);
        let (all_acked, behind) = (Arc::new(Unacked::default()), Arc::new(Unacked::default()));
        let long_ago = Instant::now() - Duration::from_secs(10);
        behind.set(Some(long_ago));
        sync.written(&delivered_path, &delivered, &all_acked);
        sync.written(&waiting_path, &waiting, &behind);
        sync.written(&gone_path, &gone, &behind);
        sync.forget(&gone_path);
        assert!(sync.interval_round(grace));
        let counts = |sync: &SpoolSync| {
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            (load(&sync.rounds), load(&sync.skipped))
        };
        assert_eq!(
            counts(&sync),
            (1, 1),
            "the waiting lane synced, the other left"
        );
        let paths = |sync: &SpoolSync| -> Vec<PathBuf> {
            let dirty = sync.dirty.lock().unwrap();
            dirty.files.iter().map(|d| d.path.clone()).collect()
        };
        assert_eq!(paths(&sync), [delivered_path]);
        // A record of the first lane just written: still not due.
        all_acked.set(Some(Instant::now()));
        assert!(sync.interval_round(grace));
        assert_eq!(counts(&sync), (1, 2));
        // The same record, half an interval later: due.
        all_acked.set(Some(long_ago));
        assert!(sync.interval_round(grace));
        assert_eq!(counts(&sync), (2, 2));
        assert!(paths(&sync).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
