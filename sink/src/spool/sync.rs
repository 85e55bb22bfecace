//! When spooled bytes reach the disk itself: `spool.sync` is `always` (a report is answered only
//! after an fsync that covers its records, shared by every write of the same moment: group
//! commit) or `interval` (every `spool.sync_interval`, nobody waits).
//!
//! Either way a record is written to the operating system before its append returns, so a
//! crash of the process (SIGKILL, OOM kill) loses nothing appended; the policy decides only what
//! a crash of the machine (power loss, kernel panic) may lose: nothing with `always`, at most
//! the last interval with `interval`.
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
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::ops::metrics::{header, MetricsSection};

/// `spool.sync`: when written records are flushed to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Every `spool.sync_interval`; a report is answered once its records are written to the
    /// operating system (safe from a process crash, not from a machine crash).
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

/// Files written since the last round started, and the round that will persist them.
#[derive(Debug)]
struct Dirty {
    files: Vec<(PathBuf, File)>,
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
        })
    }

    /// Notes that `file` (at `path`, a segment, an ack file or a lane directory) was written.
    /// With `always`, returns the round whose completion means the write is on the disk.
    pub fn written(&self, path: &Path, file: &File) -> Option<Arc<SyncRound>> {
        let mut dirty = self.dirty.lock().expect("spool sync lock");
        if !dirty.files.iter().any(|(p, _)| p == path) {
            match file.try_clone() {
                Ok(clone) => dirty.files.push((path.to_owned(), clone)),
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
    pub fn write_later(&self, path: &Path, file: &File, bytes: &[u8]) {
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

    /// Persists what was written since the last round; returns whether all of it reached the
    /// disk. Called by [`SpoolSync::run`] and at shutdown.
    pub fn sync_now(&self) -> bool {
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
        for Overwrite { path, file, bytes } in overwrites {
            match file.write_all_at(&bytes, 0) {
                Ok(()) if files.iter().any(|(p, _)| *p == path) => {}
                Ok(()) => files.push((path, file)),
                Err(e) => {
                    ok = false;
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(path = %path.display(), error = %e, "spool: write failed");
                }
            }
        }
        for (path, file) in &files {
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

    /// Runs rounds until `stop` turns true: at once after a write with `always` (writes that
    /// come during a round wait for the next one), every `interval` otherwise.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = async {
                match self.policy {
                    SyncPolicy::Always => self.wake.notified().await,
                    SyncPolicy::Interval => tokio::time::sleep(interval).await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let this = self.clone();
            if tokio::task::spawn_blocking(move || this.sync_now())
                .await
                .is_err()
            {
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
        let first = sync.written(&path, &file).expect("always gives a round");
        file.write_all(b"y").unwrap();
        let second = sync.written(&path, &file).expect("always gives a round");
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
        assert!(sync.written(&path, &file).is_none());
        assert!(sync.sync_now());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
