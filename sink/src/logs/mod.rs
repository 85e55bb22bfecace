//! File tailing (DaemonSet mode): container-log files matching `log_files.include` are read as
//! CRI lines, joined, turned into Loki entries labelled `namespace`, `pod`, `container`, `job`
//! (+ each endpoint's static labels) and pushed to every `logs[]` endpoint. A renamed or
//! deleted file is read to its end (and kept one more second for late writes) before it is
//! released; a file that shrank (copytruncate) is re-read from the start; new files are found
//! at every poll (default 250 ms), and a new file under the live name of a log the tailer
//! knows (a rotation) brings along the rotated files of that log it never read.
//!
//! Every file being tailed is in the positions file from its first read on (saved before the
//! push that holds its first lines), with two offsets: read, and acknowledged by every
//! endpoint (at-least-once); files read to their end stay listed as released while they tell
//! which rotated files were read. A restart finds each tailed file again, among its rotated
//! siblings if the kubelet rotated (and compressed) it meanwhile, resumes it from its
//! acknowledged offset and reads every rotated file of its log never read; what cannot be
//! found is counted and logged.
//!
//! With `log_files.kubernetes_sd`, the files and their stream labels come from pod discovery
//! and relabeling instead ([`discovery`], Alloy's and Promtail's `__path__`): a file gets the
//! labels of the first target whose pattern names it (a file resumed from the positions file
//! that no current target names keeps the labels its path gives).
//!
//! Owns the poll loop, the set of tailed files and when positions are saved. Line formats
//! belong to `meshtap_logformat`, HTTP and retries to `export::loki`, finding rotated files to
//! `rotation`.

pub mod config;
pub mod discovery;
pub mod file;
mod finding;
pub mod glob;
pub mod metrics;
pub mod positions;
pub mod rotation;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshtap_logformat::cri::PodLogPath;
use meshtap_logformat::loki::{LogEntry, PushBatch, StreamLabels};
use meshtap_logformat::pod_stream_labels;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::LogFilesConfig;
pub use positions::PositionsError;

use self::discovery::{pattern_matches, start_discovery, LogTarget, LogTargets};
use self::file::{ReadStats, TailedFile};
use self::metrics::TailMetrics;
use self::positions::{FileId, Position, PositionsFile};
use self::rotation::{
    is_rotated_name, live_name, reading_order, same_first_line, survey, FileMark, Sibling,
};
use crate::export::loki::sender::stopped;
use crate::export::loki::LokiEndpoint;
use crate::ops::metrics::SinkMetrics;
use crate::view::ViewTap;

/// How long a renamed or deleted file must stay at its end before it is released: the runtime
/// may still write to it until it reopens its log (kubelet renames first, then asks it to).
const RELEASE_GRACE: Duration = Duration::from_secs(1);

struct Tracked {
    file: TailedFile,
    /// Stream labels, one per endpoint.
    labels: Vec<StreamLabels>,
    /// Every line before it was acknowledged by every endpoint: where a restart resumes.
    acked: u64,
    /// Opened under a rotated name: released once read to its end.
    release_at_end: bool,
    /// Since when the file, renamed or deleted, has given nothing more (reset by new data).
    drained_since: Option<Instant>,
}

/// A file to open at startup, from the positions file or as a sibling never read.
struct Resumed {
    path: PathBuf,
    /// The acknowledged offset (0 for a sibling never read).
    offset: u64,
    /// Read before the restart but not acknowledged: sent again.
    resent: u64,
}

/// What one cycle read, ready to be pushed.
struct CycleRead {
    batches: Vec<PushBatch>,
    /// Indexes of files to release once the push is answered, and whether each was read to
    /// its end (else reading it failed).
    released: Vec<(usize, bool)>,
    /// Data was left unread because the batch was full.
    more: bool,
}

/// The endpoints' batches one cycle fills, with every file's lines in the order read.
struct BatchFill<'v> {
    /// One batch per endpoint.
    batches: Vec<PushBatch>,
    /// Line bytes taken so far (the same in every batch).
    used: usize,
    /// Data was left unread because the budget was spent.
    more: bool,
    /// Shown every line read.
    view: Option<&'v ViewTap>,
}

impl BatchFill<'_> {
    /// Adds one entry of a file with `labels` (one per endpoint) to every batch; `path` is
    /// the file's, given when there is a view to show the entry.
    fn push(&mut self, path: Option<&str>, labels: &[StreamLabels], entry: LogEntry) {
        if let (Some(view), Some(path)) = (self.view, path) {
            view.tailed(path, &entry);
        }
        self.used += entry.line.len();
        for (batch, set) in self.batches.iter_mut().zip(labels) {
            batch.push(set, entry.clone());
        }
    }
}

/// The tailer's state; [`LogTailer::run`] drives it.
pub struct LogTailer {
    config: LogFilesConfig,
    job: String,
    endpoints: Vec<Arc<LokiEndpoint>>,
    positions_file: PositionsFile,
    files: Vec<Tracked>,
    /// Files read to their end and released, kept (in the positions file too) while they tell
    /// which rotated siblings of their log were read already.
    released: Vec<Position>,
    /// Paths that cannot be tailed (logged once).
    ignored: HashSet<String>,
    last_saved: Vec<Position>,
    metrics: Arc<TailMetrics>,
    /// Shown every line read.
    view: Option<ViewTap>,
    /// With `kubernetes_sd`: the discovered targets, the watch task, and the positions to
    /// resume once the first targets are known.
    discovery: Option<Discovery>,
}

struct Discovery {
    targets: LogTargets,
    task: JoinHandle<()>,
    resume: Vec<Position>,
}

impl LogTailer {
    /// Loads the positions file, registers the tailer's metrics and opens every file a
    /// previous run was tailing (see [`LogTailer::resume`]).
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
            files: Vec::new(),
            released: Vec::new(),
            ignored: HashSet::new(),
            last_saved: loaded.clone(),
            metrics,
            view: None,
            discovery: None,
        };
        match &config.kubernetes_sd {
            Some(sd) => {
                let (targets, task) = start_discovery(sd.clone(), config.relabel_configs.clone());
                tailer.discovery = Some(Discovery {
                    targets,
                    task,
                    resume: loaded,
                });
            }
            None => tailer.resume(&loaded),
        }
        Ok(tailer)
    }

    /// Also shows every line read to `view`, when there is one.
    pub fn with_view(mut self, view: Option<ViewTap>) -> LogTailer {
        self.view = view;
        self
    }

    pub fn metrics(&self) -> &Arc<TailMetrics> {
        &self.metrics
    }

    /// Polls until `stop` turns true; a cycle that filled a batch is followed at once by the next.
    /// With discovery, files are resumed once the first targets are known.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let poll = self.config.poll_interval.get();
        if let Some(discovery) = &mut self.discovery {
            let mut targets = discovery.targets.clone();
            tokio::select! {
                _ = targets.wait_for(Option::is_some) => {}
                _ = stopped(&mut stop) => return discovery.task.abort(),
            }
            let loaded = std::mem::take(&mut discovery.resume);
            self.resume(&loaded);
        }
        let _abort_discovery = self
            .discovery
            .as_ref()
            .map(|d| d.task.abort_handle())
            .map(AbortOnDrop);
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

    /// Opens every file of the positions file from its acknowledged offset. A file no longer
    /// under its name was rotated while the sink was stopped (or while it waited for Loki): it
    /// is looked for among its rotated siblings (see [`survey`]), and every sibling its log
    /// never read is read whole. Each file is opened once, oldest first per log; those under a
    /// rotated name are released once read to their end.
    fn resume(&mut self, loaded: &[Position]) {
        let mut logs: BTreeMap<PathBuf, Vec<&Position>> = BTreeMap::new();
        for position in loaded {
            logs.entry(live_name(Path::new(&position.path)))
                .or_default()
                .push(position);
        }
        let mut plan: Vec<Resumed> = Vec::new();
        for (live, positions) in logs {
            let (at_live, elsewhere): (Vec<&Position>, Vec<&Position>) =
                positions.into_iter().partition(|p| still_live(&live, p));
            plan.extend(
                at_live
                    .into_iter()
                    .filter(|p| !p.released)
                    .map(|p| Resumed::of(live.clone(), p)),
            );
            let recognised: Vec<FileMark> = elsewhere.iter().map(|p| file_mark(p)).collect();
            let survey = survey(&live, &recognised);
            for (position, found) in elsewhere.iter().zip(survey.found) {
                match found {
                    _ if position.released => self.released.push((*position).clone()),
                    Some(found) => {
                        if found.path != Path::new(&position.path) {
                            tracing::info!(path = %found.path.display(), was = %position.path, offset = position.offset, "resuming a file rotated since it was last saved");
                        }
                        plan.push(Resumed::of(found.path, position));
                    }
                    None if position.first_line.is_some() => {
                        self.count_lost(position, "was deleted before it was finished")
                    }
                    None => self.count_lost(position, "cannot be found again"),
                }
            }
            plan.extend(survey.unread.into_iter().map(Resumed::sibling));
        }
        plan.sort_by_cached_key(|resumed| reading_order(&resumed.path));
        for resumed in plan {
            let Some(mut tracked) = self.open(&resumed.path, resumed.offset) else {
                continue;
            };
            let from = tracked.file.resume_offset();
            if from < resumed.offset {
                self.metrics.truncations.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %tracked.file.path, saved = resumed.offset, "file shorter than its acknowledged offset (truncated while the sink was stopped): reading from the start; lines written before the truncation and not read are lost");
            } else if resumed.resent > 0 {
                tracing::info!(path = %tracked.file.path, offset = from, resent_bytes = resumed.resent, "resuming from the acknowledged offset: lines read but not acknowledged before the restart are sent again");
            }
            tracked.release_at_end = is_rotated_name(&tracked.file.path);
            self.files.push(tracked);
        }
    }

    fn count_lost(&self, position: &Position, what: &str) {
        self.metrics
            .rotated_files_lost
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(path = %position.path, acknowledged = position.offset, read = position.read, "a tailed file rotated away {what}: its lines past the acknowledged offset are lost");
    }

    fn open(&mut self, path: &Path, offset: u64) -> Option<Tracked> {
        let text = path.display().to_string();
        if self.ignored.contains(&text) {
            return None;
        }
        let target = self.discovered_target(&text);
        let file = match TailedFile::open(
            path,
            offset,
            self.config.max_line_bytes,
            self.line_format(&text, target.as_ref()),
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
            let set = match &target {
                Some(target) => {
                    StreamLabels::new(target.labels.iter().chain(&endpoint.static_labels).cloned())
                }
                None => pod_stream_labels(&pod_path, &self.job, &endpoint.static_labels),
            };
            match set {
                Ok(set) => labels.push(set),
                Err(e) => {
                    self.ignored.insert(text.clone());
                    tracing::warn!(path = %text, error = %e, "file not tailed: stream labels Loki would refuse");
                    return None;
                }
            }
        }
        let acked = file.resume_offset();
        Some(Tracked {
            file,
            labels,
            acked,
            release_at_end: false,
            drained_since: None,
        })
    }

    /// One poll: discover, read up to one batch, save the files being tailed if they changed,
    /// deliver to every endpoint, then take the read offsets as acknowledged, release finished
    /// rotated/deleted files and save positions. Returns whether data was left unread because
    /// the batch was full.
    pub async fn cycle(&mut self) -> bool {
        self.discover();
        let CycleRead {
            mut batches,
            released,
            more,
        } = self.read_batch();
        // Before the push: a restart must find these files even if it is never acknowledged.
        self.save_positions(true);
        for (endpoint, batch) in self.endpoints.iter().zip(batches.iter_mut()) {
            endpoint.flush(batch).await;
        }
        for tracked in &mut self.files {
            tracked.acked = tracked.file.resume_offset();
        }
        for (index, read_to_end) in released.into_iter().rev() {
            let mut tracked = self.files.remove(index);
            self.metrics.files_released.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(path = %tracked.file.path, "released");
            if read_to_end {
                let mut position = tracked.position();
                position.released = true;
                self.released.push(position);
            }
        }
        self.metrics
            .files_tailed
            .store(self.files.len() as u64, Ordering::Relaxed);
        self.save_positions(false);
        more
    }

    /// Reads from every file, in order, until the smallest endpoint batch is full; marks
    /// renamed or deleted files drained past the grace for release.
    fn read_batch(&mut self) -> CycleRead {
        let budget = self
            .endpoints
            .iter()
            .map(|e| e.batch.max_bytes)
            .min()
            .unwrap_or(1024 * 1024);
        let mut fill = BatchFill {
            batches: self.endpoints.iter().map(|e| e.new_batch()).collect(),
            used: 0,
            more: false,
            view: self.view.as_ref(),
        };
        let mut released = Vec::new();
        for (index, tracked) in self.files.iter_mut().enumerate() {
            if fill.used >= budget {
                fill.more = true;
                break;
            }
            let room = budget - fill.used;
            if let Some(read_to_end) = tracked.read_into(room, &mut fill, &self.metrics) {
                released.push((index, read_to_end));
            }
        }
        CycleRead {
            batches: fill.batches,
            released,
            more: fill.more,
        }
    }

    /// Writes the positions file when it would change; with `files_only`, only when the set of
    /// files (paths, identities, fingerprints) changed, not their offsets.
    fn save_positions(&mut self, files_only: bool) {
        let mut positions: Vec<Position> = self.files.iter_mut().map(Tracked::position).collect();
        positions.extend(self.released.iter().cloned());
        positions.sort_by(|a, b| (&a.path, a.id.inode).cmp(&(&b.path, b.id.inode)));
        let unchanged = if files_only {
            same_files(&positions, &self.last_saved)
        } else {
            positions == self.last_saved
        };
        if unchanged {
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
                tracing::error!(error = %e, "cannot save positions (after a restart, lines may be sent again, and files rotated meanwhile missed)");
            }
        }
    }
}

impl Tracked {
    /// Reads up to `room` bytes of lines into `fill` and counts them. Returns
    /// `Some(read_to_end)` when the file is to be released: reading it failed (`false`), or,
    /// renamed or deleted, it gave nothing more for [`RELEASE_GRACE`] (`true`).
    fn read_into(
        &mut self,
        room: usize,
        fill: &mut BatchFill<'_>,
        metrics: &TailMetrics,
    ) -> Option<bool> {
        let path = fill.view.map(|_| self.file.path.clone());
        let cut_before = self.file.lines_cut();
        let read = self.file.read_lines(room, &mut |entry| {
            fill.push(path.as_deref(), &self.labels, entry)
        });
        match read {
            Ok(stats) => {
                fill.more |= stats.budget_spent;
                self.note_progress(&stats);
                metrics.count_read(&stats);
                if stats.truncated {
                    tracing::warn!(path = %self.file.path, "file shrank (copytruncate): reading from the start; lines written before the truncation and not read are lost");
                }
            }
            Err(e) => {
                tracing::warn!(path = %self.file.path, error = %e, "read failed; releasing the file");
                return Some(false);
            }
        }
        metrics
            .lines_cut
            .fetch_add(self.file.lines_cut() - cut_before, Ordering::Relaxed);
        if self
            .drained_since
            .is_some_and(|since| since.elapsed() >= RELEASE_GRACE)
        {
            self.file
                .flush_pending(&mut |entry| fill.push(path.as_deref(), &self.labels, entry));
            return Some(true);
        }
        None
    }

    /// Starts or resets the release grace: new data resets it; a renamed or deleted file (or
    /// one opened under a rotated name) with nothing more to read starts it.
    fn note_progress(&mut self, stats: &ReadStats) {
        if stats.bytes > 0 || stats.budget_spent {
            self.drained_since = None;
        } else if self.release_at_end
            || std::fs::metadata(&self.file.path).map_or(true, |m| FileId::of(&m) != self.file.id)
        {
            // Renamed or deleted and nothing more to read: released after the grace.
            self.drained_since.get_or_insert_with(Instant::now);
        }
    }

    fn position(&mut self) -> Position {
        Position {
            path: self.file.path.clone(),
            id: self.file.id,
            offset: self.acked,
            read: self.file.resume_offset(),
            first_line: self.file.first_line(),
            released: false,
        }
    }
}

impl Resumed {
    /// `position`'s file, found at `path`.
    fn of(path: PathBuf, position: &Position) -> Resumed {
        Resumed {
            path,
            offset: position.offset,
            resent: position.read.saturating_sub(position.offset),
        }
    }

    fn sibling(sibling: Sibling) -> Resumed {
        Resumed {
            path: sibling.path,
            offset: 0,
            resent: 0,
        }
    }
}

/// Whether `position`'s file is still under the live name `live` (same identity and first line).
/// Aborts a task when dropped (the discovery watch ends with the tailer).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn still_live(live: &Path, position: &Position) -> bool {
    Path::new(&position.path) == live
        && std::fs::metadata(live).is_ok_and(|m| FileId::of(&m) == position.id)
        && same_first_line(live, position.first_line)
}

fn file_mark(position: &Position) -> FileMark {
    FileMark {
        id: position.id,
        first_line: position.first_line,
    }
}

/// Whether two position lists name the same files (ignoring offsets).
fn same_files(a: &[Position], b: &[Position]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (&x.path, x.id, x.first_line, x.released) == (&y.path, y.id, y.first_line, y.released)
        })
}
