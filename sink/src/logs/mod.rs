//! File tailing (DaemonSet mode): container-log files matching `log_files.include` are read as
//! CRI lines, joined, turned into Loki entries labelled `namespace`, `pod`, `container`, `job`
//! (+ each endpoint's static labels) and pushed to every `logs[]` endpoint. Positions advance
//! only after every endpoint answered (at-least-once). A renamed or deleted file is read to its
//! end (and kept one more second for late writes) before it is released; a file that shrank
//! (copytruncate) is re-read from the start; new files are found at every poll (default 250 ms).
//! Files rotated while the sink was stopped are found among their rotated siblings (by inode,
//! or by their first line once the kubelet compressed them) and finished, followed by the
//! siblings rotated after them (`.gz` ones decompressed).
//!
//! Owns the poll loop, the set of tailed files and when positions are saved. Line formats
//! belong to `meshtap_logformat`, HTTP and retries to `export::loki`.

pub mod config;
pub mod file;
pub mod glob;
pub mod metrics;
pub mod positions;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshtap_logformat::cri::PodLogPath;
use meshtap_logformat::loki::{LabelSet, LogEntry, PushBatch};
use meshtap_logformat::pod_stream_labels;
use tokio::sync::watch;

pub use config::LogFilesConfig;
pub use positions::PositionsError;

use self::file::{first_line_hash, head_of, TailedFile};
use self::metrics::TailMetrics;
use self::positions::{FileId, Position, PositionsFile};
use crate::export::loki::sender::stopped;
use crate::export::loki::LokiEndpoint;
use crate::ops::metrics::SinkMetrics;

/// How long a renamed or deleted file must stay at its end before it is released: the runtime
/// may still write to it until it reopens its log (kubelet renames first, then asks it to).
const RELEASE_GRACE: Duration = Duration::from_secs(1);

struct Tracked {
    file: TailedFile,
    /// Stream labels, one per endpoint.
    labels: Vec<LabelSet>,
    /// Found under a rotated name at startup: released once read to its end.
    release_at_end: bool,
    /// Since when the file, renamed or deleted, has given nothing more (reset by new data).
    drained_since: Option<Instant>,
}

/// The tailer's state; [`LogTailer::run`] drives it.
pub struct LogTailer {
    config: LogFilesConfig,
    job: String,
    endpoints: Vec<Arc<LokiEndpoint>>,
    positions_file: PositionsFile,
    /// Positions loaded at startup, consulted by the first discovery.
    saved: HashMap<String, Position>,
    files: Vec<Tracked>,
    /// Paths that cannot be tailed (logged once).
    ignored: HashSet<String>,
    last_saved: Vec<Position>,
    metrics: Arc<TailMetrics>,
}

impl LogTailer {
    /// Loads the positions file and registers the tailer's metrics.
    pub fn new(
        config: &LogFilesConfig,
        job: &str,
        endpoints: Vec<Arc<LokiEndpoint>>,
        sink_metrics: &SinkMetrics,
    ) -> Result<LogTailer, PositionsError> {
        let positions_file = PositionsFile::new(Path::new(&config.positions_file));
        let loaded = positions_file.load()?;
        let metrics = Arc::new(TailMetrics::default());
        sink_metrics.add_section(metrics.clone());
        let mut tailer = LogTailer {
            config: config.clone(),
            job: job.to_owned(),
            endpoints,
            positions_file,
            saved: loaded.iter().map(|p| (p.path.clone(), p.clone())).collect(),
            files: Vec::new(),
            ignored: HashSet::new(),
            last_saved: loaded.clone(),
            metrics,
        };
        tailer.resume_rotated(&loaded);
        Ok(tailer)
    }

    pub fn metrics(&self) -> &Arc<TailMetrics> {
        &self.metrics
    }

    /// Polls until `stop` turns true; a cycle that filled a batch is followed at once by the next.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let poll = self.config.poll_interval.get();
        loop {
            let more = self.cycle().await;
            if *stop.borrow() {
                return;
            }
            if !more {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stopped(&mut stop) => return,
                }
            }
        }
    }

    /// Saved files no longer where they were were rotated while the sink was stopped: each is
    /// looked for among its rotated siblings (by its first line's fingerprint, as the kubelet
    /// may have compressed it into a new file and inodes are reused; by identity for positions
    /// saved without one) and finished from
    /// its offset; every sibling rotated after it is read whole. A saved position on a rotated
    /// name (a file being finished when the sink stopped) resumes where it is. Each file is
    /// opened once, oldest first, and released once read to its end.
    fn resume_rotated(&mut self, loaded: &[Position]) {
        // (path, identity, offset, offset saved for this very file)
        let mut plan: Vec<(PathBuf, FileId, u64, bool)> = Vec::new();
        let mut add = |path: &Path, id: FileId, offset: u64, saved: bool| match plan
            .iter_mut()
            .find(|(_, planned, _, _)| *planned == id)
        {
            Some(entry) if saved => *entry = (path.to_owned(), id, offset, true),
            Some(_) => {}
            None => plan.push((path.to_owned(), id, offset, saved)),
        };
        for position in loaded {
            let path = Path::new(&position.path);
            let current = std::fs::metadata(path).ok().map(|m| FileId::of(&m));
            if current == Some(position.id) && same_first_line(path, position) {
                if is_rotated_name(&position.path) {
                    add(path, position.id, position.offset, true);
                }
                continue;
            }
            let siblings = rotated_siblings(path);
            // The fingerprint decides when known (inodes are reused), else the identity.
            let ours = siblings
                .iter()
                .position(|(sibling, id)| match position.first_line {
                    Some(saved) => {
                        head_of(sibling).ok().and_then(|h| first_line_hash(&h)) == Some(saved)
                    }
                    None => *id == position.id,
                });
            let newer = match ours {
                Some(i) => {
                    let (found, id) = &siblings[i];
                    tracing::info!(path = %found.display(), was = %position.path, offset = position.offset, "resuming a file rotated while the sink was stopped");
                    add(found, *id, position.offset, true);
                    &siblings[i + 1..]
                }
                // The kubelet deletes the oldest rotated files first: all that remain are newer.
                None if position.first_line.is_some() => {
                    self.metrics
                        .rotated_files_lost
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %position.path, offset = position.offset, "a file rotated while the sink was stopped was deleted before it was finished: its unread lines are lost");
                    &siblings[..]
                }
                None => {
                    self.metrics
                        .rotated_files_lost
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(path = %position.path, offset = position.offset, "a file rotated while the sink was stopped cannot be found again: its unread lines are lost");
                    continue;
                }
            };
            for (sibling, id) in newer {
                add(sibling, *id, 0, false);
            }
        }
        for (path, _, offset, _) in plan {
            if let Some(mut tracked) = self.open(&path, offset) {
                tracked.release_at_end = true;
                self.files.push(tracked);
            }
        }
    }

    fn open(&mut self, path: &Path, offset: u64) -> Option<Tracked> {
        let text = path.display().to_string();
        if self.ignored.contains(&text) {
            return None;
        }
        let file = match TailedFile::open(
            path,
            offset,
            self.config.max_line_bytes,
            self.config.parse_access_logs,
        ) {
            Ok(file) => file,
            Err(e) => {
                self.ignored.insert(text);
                tracing::warn!(error = %e, "file not tailed");
                return None;
            }
        };
        let mut labels = Vec::with_capacity(self.endpoints.len());
        for endpoint in &self.endpoints {
            let pod_path = PodLogPath::parse(&text).expect("parsed when opened");
            match pod_stream_labels(&pod_path, &self.job, &endpoint.static_labels) {
                Ok(set) => labels.push(set),
                Err(e) => {
                    self.ignored.insert(text.clone());
                    tracing::warn!(path = %text, error = %e, "file not tailed: stream labels Loki would refuse");
                    return None;
                }
            }
        }
        Some(Tracked {
            file,
            labels,
            release_at_end: false,
            drained_since: None,
        })
    }

    /// Opens files matching the glob that are not tailed yet (resuming saved positions).
    fn discover(&mut self) {
        let tracked: HashSet<FileId> = self.files.iter().map(|t| t.file.id).collect();
        for path in glob::expand(&self.config.include) {
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            let id = FileId::of(&metadata);
            if tracked.contains(&id) {
                continue;
            }
            let text = path.display().to_string();
            let offset = self
                .saved
                .remove(&text)
                .filter(|p| p.id == id && same_first_line(&path, p))
                .map_or(0, |p| p.offset);
            if let Some(t) = self.open(&path, offset) {
                tracing::debug!(path = %t.file.path, offset, "tailing");
                self.files.push(t);
            }
        }
    }

    /// One poll: discover, read up to one batch, deliver to every endpoint, then save
    /// positions and release finished rotated/deleted files. Returns whether data was left
    /// unread because the batch was full.
    pub async fn cycle(&mut self) -> bool {
        self.discover();
        // Saved positions only matter when a file is first seen, which the first discovery did.
        self.saved.clear();
        let budget = self
            .endpoints
            .iter()
            .map(|e| e.batch.max_bytes)
            .min()
            .unwrap_or(1024 * 1024);
        let mut batches: Vec<PushBatch> = self.endpoints.iter().map(|e| e.new_batch()).collect();
        let mut used = 0usize;
        let mut released = Vec::new();
        let mut more = false;
        for (index, tracked) in self.files.iter_mut().enumerate() {
            if used >= budget {
                more = true;
                break;
            }
            let Tracked {
                file,
                labels,
                release_at_end,
                drained_since,
            } = tracked;
            let room = budget - used;
            let mut push = |entry: LogEntry| {
                used += entry.line.len();
                for (batch, set) in batches.iter_mut().zip(labels.iter()) {
                    batch.push(set, entry.clone());
                }
            };
            let cut_before = file.lines_cut();
            match file.read_lines(room, &mut push) {
                Ok(stats) => {
                    more |= stats.budget_spent;
                    if stats.bytes > 0 || stats.budget_spent {
                        *drained_since = None;
                    } else if *release_at_end
                        || std::fs::metadata(&file.path).map_or(true, |m| FileId::of(&m) != file.id)
                    {
                        // Renamed or deleted and nothing more to read: released after the grace.
                        drained_since.get_or_insert_with(Instant::now);
                    }
                    let m = &self.metrics;
                    m.bytes_read.fetch_add(stats.bytes, Ordering::Relaxed);
                    m.lines_read.fetch_add(stats.lines, Ordering::Relaxed);
                    m.malformed_lines
                        .fetch_add(stats.malformed, Ordering::Relaxed);
                    if stats.truncated {
                        m.truncations.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(path = %file.path, "file shrank (copytruncate): reading from the start");
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %file.path, error = %e, "read failed; releasing the file");
                    released.push(index);
                    continue;
                }
            }
            self.metrics
                .lines_cut
                .fetch_add(file.lines_cut() - cut_before, Ordering::Relaxed);
            if drained_since.is_some_and(|since| since.elapsed() >= RELEASE_GRACE) {
                file.flush_pending(&mut push);
                released.push(index);
            }
        }
        for (endpoint, batch) in self.endpoints.iter().zip(batches.iter_mut()) {
            endpoint.flush(batch).await;
        }
        for index in released.into_iter().rev() {
            let tracked = self.files.remove(index);
            self.metrics.files_released.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %tracked.file.path, "released");
        }
        self.metrics
            .files_tailed
            .store(self.files.len() as u64, Ordering::Relaxed);
        self.save_positions();
        more
    }

    fn save_positions(&mut self) {
        let mut positions: Vec<Position> = self
            .files
            .iter_mut()
            .map(|t| Position {
                path: t.file.path.clone(),
                id: t.file.id,
                offset: t.file.resume_offset(),
                first_line: t.file.first_line(),
            })
            .collect();
        positions.sort_by(|a, b| a.path.cmp(&b.path).then(a.offset.cmp(&b.offset)));
        if positions == self.last_saved {
            return;
        }
        match self.positions_file.save(&positions) {
            Ok(()) => {
                self.metrics
                    .positions_writes
                    .fetch_add(1, Ordering::Relaxed);
                self.last_saved = positions;
            }
            Err(e) => {
                self.metrics
                    .positions_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot save positions (lines may be sent again after a restart)");
            }
        }
    }
}

/// Whether the file at `path` still starts with the saved position's first line (unknown
/// fingerprints count as the same): an inode freed by a rotation can be reused by the next
/// file at the same path.
fn same_first_line(path: &Path, position: &Position) -> bool {
    let Some(saved) = position.first_line else {
        return true;
    };
    head_of(path)
        .ok()
        .and_then(|head| first_line_hash(&head))
        .is_none_or(|now| now == saved)
}

/// Whether `path` is a rotated name (`<n>.log.<stamp>` or `<n>.log.<stamp>.gz`).
fn is_rotated_name(path: &str) -> bool {
    PodLogPath::parse(path).is_ok_and(|p| p.rotated_at.is_some())
}

/// The rotated files of the log at `path` (`<name>.<stamp>` and `<name>.<stamp>.gz` in its
/// directory), oldest first, with their identities.
fn rotated_siblings(path: &Path) -> Vec<(PathBuf, FileId)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut siblings: Vec<(String, bool, PathBuf, FileId)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let text = path.to_str()?.to_owned();
            entry.file_name().to_str()?.strip_prefix(&prefix)?;
            let parsed = PodLogPath::parse(&text).ok()?;
            let stamp = parsed.rotated_at?.to_owned();
            let metadata = entry.metadata().ok().filter(|m| m.is_file())?;
            Some((stamp, parsed.compressed, path, FileId::of(&metadata)))
        })
        .collect();
    // While the kubelet compresses a file, `<stamp>` and `<stamp>.gz` both exist: the plain
    // one is complete, the other one may not be yet.
    siblings.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    siblings.dedup_by(|later, kept| later.0 == kept.0);
    siblings
        .into_iter()
        .map(|(_, _, path, id)| (path, id))
        .collect()
}
