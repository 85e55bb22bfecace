//! Spool stage: remote-write batches and filter-shipped access-log pushes kept on disk until
//! the endpoint has taken them, so an outage longer than the memory queue, or a restart, loses
//! nothing.
//!
//! With `spool:` configured every sealed batch of every remote-write endpoint (and every push of
//! filter-shipped records to a Loki endpoint) is encoded and appended to its lane's spool
//! (write-through, as a write-ahead log does), and the lane's sender reads it back from there;
//! without it they queue in memory. Layout:
//! `<dir>/<remote_write|loki>/<endpoint>-<url hash>/lane-<i>/<segment>.seg` plus an `ack` file
//! per lane. This module owns the config, the directory layout and the hand-over of lanes whose
//! index no longer exists after `queue.lanes` shrank; the files themselves belong to
//! `lane_spool`, the record format to `record`. It must not know what a body holds.

mod disk_io;
mod lane_files;
mod lane_spool;
mod record;
mod sync;
#[cfg(test)]
mod tests;
mod unacked;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use disk_io::{disk_io, lock_off_worker};
pub use lane_spool::{LaneSpool, Recovered, Skipped};
pub use record::{BodyForm, NewRecord, RecordMeta};
pub use sync::{SpoolSync, SyncPolicy, SyncRound};

/// Which exporter an endpoint's spool belongs to (the first directory level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolKind {
    RemoteWrite,
    Loki,
}

impl SpoolKind {
    fn dir_name(self) -> &'static str {
        match self {
            SpoolKind::RemoteWrite => "remote_write",
            SpoolKind::Loki => "loki",
        }
    }
}

use crate::floor::{ByteSize, HttpUrl, HumanDuration};

/// `spool:` — where and how much to keep on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool (a persistent volume, or an `emptyDir` to survive container
    /// restarts).
    pub dir: PathBuf,
    /// Disk used per remote-write endpoint; past it the oldest segment is dropped (counted as
    /// `queue_full`), or, for scrapes with `queue.when_full: block`, scraping waits.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Size at which a lane starts a new segment file.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: ByteSize,
    /// When written records are flushed to the disk (see [`SyncPolicy`]).
    #[serde(default)]
    pub sync: SyncPolicy,
    /// How often records are flushed with `sync: interval`.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: HumanDuration,
}

fn default_sync_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(1024)
}

fn default_segment_bytes() -> ByteSize {
    ByteSize::mib(16)
}

impl SpoolConfig {
    /// A spool in `dir` with the default sizes and sync policy.
    pub fn new(dir: PathBuf) -> SpoolConfig {
        SpoolConfig {
            dir,
            max_bytes: default_max_bytes(),
            segment_bytes: default_segment_bytes(),
            sync: SyncPolicy::default(),
            sync_interval: default_sync_interval(),
        }
    }

    /// Checks the sizes against the lane counts of the endpoints that will use the spool.
    pub fn check(&self, lanes: impl IntoIterator<Item = usize>) -> Result<(), String> {
        if self.dir.as_os_str().is_empty() {
            return Err("spool.dir: must not be empty".into());
        }
        if self.sync == SyncPolicy::Interval && self.sync_interval.is_zero() {
            return Err("spool.sync_interval: must be more than 0s (or use `sync: always`)".into());
        }
        if self.segment_bytes.get() < 64 << 10 {
            return Err("spool.segment_bytes: must be at least 64KiB".into());
        }
        for lanes in lanes {
            let per_lane = self.max_bytes.get() / lanes.max(1) as u64;
            if per_lane < 2 * self.segment_bytes.get() {
                return Err(format!(
                    "spool.max_bytes: {} is less than two segments ({}) for each of {lanes} lanes",
                    self.max_bytes, self.segment_bytes
                ));
            }
        }
        Ok(())
    }

    /// Takes the spool directory for this process (an exclusive lock on `<dir>/lock`, released
    /// when the returned file is dropped or the process ends): two sinks writing one spool
    /// would send each other's records and delete each other's segments.
    pub fn lock(&self) -> Result<fs::File, SpoolError> {
        fs::create_dir_all(&self.dir).map_err(SpoolError::at(&self.dir))?;
        let path = self.dir.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(SpoolError::at(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(SpoolError::InUse {
                path: path.display().to_string(),
            }),
            Err(fs::TryLockError::Error(source)) => Err(SpoolError::at(&path)(source)),
        }
    }

    /// Opens the spools of one endpoint's lanes, adopting lane directories a previous run with
    /// more lanes left behind.
    pub fn open_lanes(
        &self,
        kind: SpoolKind,
        name: &str,
        url: &str,
        lanes: usize,
    ) -> Result<Vec<(LaneSpool, Recovered)>, SpoolError> {
        let dir = self.endpoint_dir(kind, name, url);
        // An unnamed endpoint whose URL has user info was once named by the whole URL: its
        // spool moves to the name without the credentials.
        // Only an unnamed endpoint (named by its redacted URL) moves: a named endpoint with
        // the same URL must not take another endpoint's spool.
        let unnamed = HttpUrl::parse(url).is_ok_and(|u| u.has_user_info() && u.redacted() == name);
        let named_by_whole_url = self.endpoint_dir(kind, url, url);
        if unnamed && named_by_whole_url.exists() && !dir.exists() {
            fs::rename(&named_by_whole_url, &dir).map_err(SpoolError::at(&dir))?;
        }
        adopt_orphan_lanes(&dir, lanes)?;
        let per_lane = self.max_bytes.get() / lanes as u64;
        (0..lanes)
            .map(|i| LaneSpool::open(&lane_dir(&dir, i), per_lane, self.segment_bytes.get()))
            .collect()
    }

    /// Spool directories of endpoints that are no longer configured (renamed, moved or
    /// removed) and still hold segments: their records are not sent by anyone.
    pub fn abandoned(&self, kind: SpoolKind, configured: &[(&str, &str)]) -> Vec<PathBuf> {
        let in_use: Vec<PathBuf> = configured
            .iter()
            .map(|(name, url)| self.endpoint_dir(kind, name, url))
            .collect();
        let Ok(entries) = fs::read_dir(self.dir.join(kind.dir_name())) else {
            return Vec::new();
        };
        let mut abandoned: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|dir| !in_use.contains(dir) && holds_segments(dir))
            .collect();
        abandoned.sort();
        abandoned
    }

    /// `<dir>/<kind>/<name>-<hash of url>`: readable, and distinct per endpoint.
    fn endpoint_dir(&self, kind: SpoolKind, name: &str, url: &str) -> PathBuf {
        let readable: String = name
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = twox_hash::XxHash3_64::oneshot(url.as_bytes()) as u32;
        self.dir
            .join(kind.dir_name())
            .join(format!("{readable}-{hash:08x}"))
    }
}

/// The spool of this process: its directory locked, and its fsync scheduler running.
pub struct Spool {
    config: SpoolConfig,
    sync: Arc<SpoolSync>,
    /// Dropping the spool stops the scheduler.
    _stop: watch::Sender<bool>,
    _lock: fs::File,
}

impl Spool {
    /// Locks the directory and starts the fsync scheduler (on the current tokio runtime).
    pub fn open(config: &SpoolConfig) -> Result<Spool, SpoolError> {
        let lock = config.lock()?;
        let sync = SpoolSync::new(config.sync);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(sync.clone().run(config.sync_interval.get(), stop_rx));
        Ok(Spool {
            config: config.clone(),
            sync,
            _stop: stop,
            _lock: lock,
        })
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    pub fn sync(&self) -> &Arc<SpoolSync> {
        &self.sync
    }

    /// Opens the spools of one endpoint's lanes (see [`SpoolConfig::open_lanes`]), each
    /// registering its writes with the fsync scheduler.
    pub fn open_endpoint(
        &self,
        kind: SpoolKind,
        name: &str,
        url: &str,
        lanes: usize,
    ) -> Result<Vec<(LaneSpool, Recovered)>, SpoolError> {
        let opened = self.config.open_lanes(kind, name, url, lanes)?;
        Ok(opened
            .into_iter()
            .map(|(lane, recovered)| (lane.with_sync(self.sync.clone()), recovered))
            .collect())
    }
}

/// Whether any lane directory under `endpoint_dir` holds a segment file.
fn holds_segments(endpoint_dir: &Path) -> bool {
    fs::read_dir(endpoint_dir).is_ok_and(|lanes| {
        lanes
            .flatten()
            .any(|lane| lane_files::segment_ids(&lane.path()).is_ok_and(|ids| !ids.is_empty()))
    })
}

fn lane_dir(endpoint_dir: &Path, lane: usize) -> PathBuf {
    endpoint_dir.join(format!("lane-{lane}"))
}

/// Moves the segments of `lane-<j>` (j ≥ `lanes`) behind those of `lane-<j % lanes>` and
/// removes the directory. Their acknowledgement is not carried over, so records already sent
/// from the partly sent segment are sent again (the same samples, which a Prometheus-compatible
/// backend accepts as duplicates).
fn adopt_orphan_lanes(endpoint_dir: &Path, lanes: usize) -> Result<(), SpoolError> {
    let io = SpoolError::at;
    let Ok(entries) = fs::read_dir(endpoint_dir) else {
        return Ok(());
    };
    let mut orphans: Vec<usize> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_prefix("lane-")?
                .parse()
                .ok()
        })
        .filter(|j| *j >= lanes)
        .collect();
    orphans.sort_unstable();
    for j in orphans {
        let from = lane_dir(endpoint_dir, j);
        let to = lane_dir(endpoint_dir, j % lanes);
        fs::create_dir_all(&to).map_err(io(&to))?;
        let (spool, _) = LaneSpool::open(&from, u64::MAX, u64::MAX)?;
        drop(spool);
        let first = lane_files::first_free_id(&to).map_err(io(&to))?;
        let moving = lane_files::segment_ids(&from).map_err(io(&from))?;
        for (id, new_id) in moving.into_iter().zip(first..) {
            let source = lane_files::segment_path(&from, id);
            fs::rename(&source, lane_files::segment_path(&to, new_id)).map_err(io(&source))?;
        }
        fs::remove_dir_all(&from).map_err(io(&from))?;
        tracing::warn!(from = %from.display(), to = %to.display(), "spool: lane count shrank; the lane's unsent records were moved to another lane (samples near the restart may arrive out of order)");
    }
    Ok(())
}

/// A record read back from the spool.
#[derive(Debug)]
pub struct SpooledBatch {
    pub meta: RecordMeta,
    pub body: Bytes,
}

/// A spool that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool: {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(
        "spool: {path} is locked by another process (each sink needs a spool directory of its own)"
    )]
    InUse { path: String },
}

impl SpoolError {
    /// Maps an I/O error on `path` (for `map_err`).
    pub fn at(path: &Path) -> impl Fn(std::io::Error) -> SpoolError {
        let path = path.display().to_string();
        move |error| SpoolError::Io {
            path: path.clone(),
            error,
        }
    }
}
