//! One lane's spool: a directory of numbered segment files holding records in send order, and
//! an acknowledgement file saying how far delivery got.
//!
//! Owns the files: appending (rolling to a new segment past `segment_bytes`), handing records
//! out oldest first, acknowledging them (`finish`), deleting consumed segments, evicting the
//! oldest segment past `max_bytes`, and recovering after a restart or crash (its child module in
//! `lane_recovery.rs`). It knows nothing of what a body holds.
//!
//! Durability: every record is written to the operating system before `append` returns, so a
//! crash of the process loses nothing appended; written files are registered with the
//! process's [`SpoolSync`], which persists them to the disk by `spool.sync` policy, and
//! [`LaneSpool::sync`] (called at shutdown) persists them too. A record handed out but not
//! acknowledged is handed out again after a restart (at-least-once); several records may be
//! handed out before one `finish` acknowledges them all. The acknowledgement itself is left to
//! the [`SpoolSync`]'s next round, so a crash also sends again what was delivered since.
//! Appending and reading back run through [`disk_io`] at the caller; `finish` calls it itself,
//! only when it deletes a segment (or writes the acknowledgement without a [`SpoolSync`]).

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::lane_files::{ack_bytes, reserve_blocks, segment_path};
use super::record::{self, BodyForm, NewRecord, ReadOutcome, RecordMeta, HEADER_LEN};
use super::sync::{SpoolSync, SyncRound};
use super::unacked::Unacked;
use super::{disk_io, SpoolError, SpooledBatch};

#[path = "lane_recovery.rs"]
mod recovery;

/// Bytes of record bodies a lane keeps in memory after writing them, for the sender to take
/// without reading them back: a few requests' worth. Records appended while the lane is
/// behind (past this, or behind records that are only on disk) are read back from the disk.
const FRESH_BYTES: usize = 1 << 20;

/// How long the oldest unacknowledged record waits before the lane counts as behind (see
/// [`LaneSpool::sender_behind`]); a sender that keeps up acknowledges within milliseconds.
const BEHIND_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a record sits and what it holds.
#[derive(Clone, Copy, Debug)]
struct RecordPlace {
    segment: u64,
    offset: u64,
    len: u64,
    samples: u32,
    oldest_ms: i64,
    /// When it was written (when it was found, for a record recovered at start).
    written_at: Instant,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    bytes: u64,
}

/// What recovery found in a lane directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub records: u64,
    pub samples: u64,
    /// Records found damaged (skipped with the rest of their segment).
    pub corrupt_records: u64,
    /// Bytes cut off segment ends (damaged or cut-short records).
    pub discarded_bytes: u64,
}

/// The spool of one lane.
#[derive(Debug)]
pub struct LaneSpool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    unread: VecDeque<RecordPlace>,
    /// The bodies of the first `fresh.len()` records of `unread`, kept from `append` so the
    /// sender takes what was just written without reading it back (see [`FRESH_BYTES`]).
    fresh: VecDeque<(RecordMeta, Bytes)>,
    fresh_bytes: usize,
    taken: Option<RecordPlace>,
    writer: Option<(u64, File)>,
    reader: Option<(u64, File)>,
    next_segment: u64,
    bytes: u64,
    unread_samples: u64,
    ack: File,
    ack_path: PathBuf,
    skipped: Skipped,
    sync: Option<Arc<SpoolSync>>,
    /// Since when the oldest record not yet acknowledged waits, for the fsync rounds.
    unacked: Arc<Unacked>,
    /// The fsync round covering the last append (with `spool.sync: always`).
    last_round: Option<Arc<SyncRound>>,
    /// Past `max_bytes`, delete the oldest segment; otherwise the writers are held back
    /// before it is reached (see [`LaneSpool::has_room`]) and nothing is ever deleted unsent.
    evicts: bool,
}

/// Records skipped when read back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    pub records: u64,
    pub samples: u64,
}

impl LaneSpool {
    /// Registers every file this spool writes with `sync`.
    pub fn with_sync(mut self, sync: Arc<SpoolSync>) -> LaneSpool {
        self.sync = Some(sync);
        self
    }

    /// Never deletes unsent records to stay within `max_bytes` (the writers check
    /// [`LaneSpool::has_room`] and wait or refuse instead).
    pub fn without_eviction(mut self) -> LaneSpool {
        self.evicts = false;
        self
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }

    /// Appends a record; returns the samples of unsent records evicted to stay within
    /// `max_bytes` (whole oldest segments, one entry each).
    pub fn append(&mut self, meta: RecordMeta, body: &[u8]) -> Result<Vec<u64>, SpoolError> {
        self.append_all(vec![NewRecord::new(meta, Bytes::copy_from_slice(body))])
    }

    /// Appends records, in order, with one write: all of them or, when the write fails, none.
    /// Returns the samples of unsent records evicted to stay within `max_bytes` (whole oldest
    /// segments, one entry each).
    pub fn append_all(&mut self, records: Vec<NewRecord>) -> Result<Vec<u64>, SpoolError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.roll_if_full();
        if self.writer.is_none() {
            self.open_writer()?;
        }
        let headers: Vec<[u8; HEADER_LEN]> = records
            .iter()
            .map(|r| record::header(r.meta, &r.body))
            .collect();
        let parts: Vec<&[u8]> = headers
            .iter()
            .zip(&records)
            .flat_map(|(header, r)| [&header[..], &r.body[..]])
            .collect();
        self.write_records(&parts)?;
        let written_at = Instant::now();
        for NewRecord {
            meta,
            body,
            as_sent,
        } in records
        {
            let len = (HEADER_LEN + body.len()) as u64;
            let place = self.record_written(meta, len, written_at);
            match as_sent {
                Some(sent) => {
                    let meta = RecordMeta {
                        form: BodyForm::AsSent,
                        ..meta
                    };
                    self.keep_fresh(place, meta, sent);
                }
                None => self.keep_fresh(place, meta, body),
            }
        }
        self.register_write();
        let evicted = self.evict_past_max_bytes();
        self.publish_unacked();
        Ok(evicted)
    }

    /// Closes the writer's segment once it reached `segment_bytes` (the writer's segment is
    /// always the newest one).
    fn roll_if_full(&mut self) {
        let writer_full = self
            .segments
            .back()
            .is_some_and(|s| s.bytes >= self.segment_bytes);
        if writer_full {
            self.writer = None;
        }
    }

    /// Starts the next segment file.
    fn open_writer(&mut self) -> Result<(), SpoolError> {
        let id = self.next_segment;
        let path = self.segment_path(id);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(SpoolError::at(&path))?;
        // Unreserved blocks are allocated by the writes, as without it.
        let _ = reserve_blocks(&file, self.segment_bytes);
        self.next_segment += 1;
        self.segments.push_back(Segment { id, bytes: 0 });
        self.writer = Some((id, file));
        self.directory_written();
        Ok(())
    }

    /// Writes records' headers and bodies (`parts`) to the writer's segment in one call. A
    /// failed write leaves no partial record behind: the next append starts a fresh segment,
    /// and a segment left empty goes (a disk refusing every write would otherwise collect one
    /// empty file per attempt).
    fn write_records(&mut self, parts: &[&[u8]]) -> Result<(), SpoolError> {
        let (id, file) = self.writer.as_mut().expect("writer opened");
        let id = *id;
        let Err(source) = record::write_all_parts(file, parts) else {
            return Ok(());
        };
        let segment = self.segments.back_mut().expect("writer segment");
        let _ = file.set_len(segment.bytes);
        let empty = segment.bytes == 0;
        self.writer = None;
        let path = self.segment_path(id);
        if empty && fs::remove_file(&path).is_ok() {
            self.segments.pop_back();
        }
        Err(SpoolError::Io {
            path: path.display().to_string(),
            error: source,
        })
    }

    /// Accounts for a record of `len` bytes just written to the writer's segment.
    fn record_written(&mut self, meta: RecordMeta, len: u64, written_at: Instant) -> RecordPlace {
        let (id, _) = self.writer.as_ref().expect("writer open");
        let segment = self.segments.back_mut().expect("writer segment");
        let place = RecordPlace {
            segment: *id,
            offset: segment.bytes,
            len,
            samples: meta.samples,
            oldest_ms: meta.oldest_ms,
            written_at,
        };
        self.unread.push_back(place);
        segment.bytes += len;
        self.bytes += len;
        self.unread_samples += u64::from(meta.samples);
        place
    }

    /// Hands the writer's segment, just written, to the sync policy.
    fn register_write(&mut self) {
        let (id, file) = self.writer.as_ref().expect("writer open");
        if let Some(sync) = &self.sync {
            self.last_round = sync.written(&segment_path(&self.dir, *id), file, &self.unacked);
        }
    }

    /// Evicts whole oldest segments while past `max_bytes` (when this spool evicts); returns
    /// the samples of each. The record is written: a failed eviction is logged, not returned
    /// (the caller would write the record again).
    fn evict_past_max_bytes(&mut self) -> Vec<u64> {
        let mut evicted = Vec::new();
        while self.evicts && self.bytes > self.max_bytes && self.segments.len() > 1 {
            match self.evict_oldest() {
                Ok(samples) => evicted.push(samples),
                Err(e) => {
                    tracing::error!(error = %e, "spool: cannot delete the oldest segment; the spool stays over max_bytes");
                    break;
                }
            }
        }
        evicted
    }

    /// Whether a record appended now is likely to wait on disk: records only on disk wait
    /// before it, the bodies kept in memory fill half their room already, or the oldest record
    /// not yet acknowledged has waited [`BEHIND_AFTER`] (the endpoint is slow or down). Such a
    /// record is worth writing compactly.
    pub fn sender_behind(&self) -> bool {
        let waited = self.oldest_unacked();
        self.fresh.len() < self.unread.len()
            || self.fresh_bytes >= FRESH_BYTES / 2
            || waited.is_some_and(|r| r.written_at.elapsed() >= BEHIND_AFTER)
    }

    /// Keeps the body of the record just written at `place` in memory while every unread
    /// record before it is kept too and the bodies stay within [`FRESH_BYTES`].
    fn keep_fresh(&mut self, place: RecordPlace, meta: RecordMeta, body: Bytes) {
        let all_before_kept = self.fresh.len() + 1 == self.unread.len();
        if all_before_kept && self.fresh_bytes + body.len() <= FRESH_BYTES {
            debug_assert_eq!(self.unread.back().map(|r| r.offset), Some(place.offset));
            self.fresh_bytes += body.len();
            self.fresh.push_back((meta, body));
        }
    }

    /// Hands out the oldest record not yet handed out if its body is still in memory (no
    /// disk access).
    pub fn take_fresh(&mut self) -> Option<SpooledBatch> {
        let (meta, body) = self.fresh.pop_front()?;
        self.fresh_bytes -= body.len();
        let place = self.unread.pop_front().expect("fresh records are unread");
        self.unread_samples -= u64::from(place.samples);
        self.taken = Some(place);
        Some(SpooledBatch { meta, body })
    }

    /// A segment was created: the directory entry must reach the disk too.
    fn directory_written(&mut self) {
        let Some(sync) = &self.sync else { return };
        match File::open(&self.dir) {
            Ok(dir) => {
                sync.written(&self.dir, &dir, &self.unacked);
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "spool: cannot open the lane directory for fsync");
            }
        }
    }

    /// The fsync round that covers the last append, when `spool.sync` is `always`.
    pub fn last_round(&self) -> Option<Arc<SyncRound>> {
        self.last_round.clone()
    }

    /// Samples of the next record to hand out.
    pub fn next_samples(&self) -> Option<u32> {
        self.unread.front().map(|r| r.samples)
    }

    /// Deletes the oldest segment; returns the samples of its records not yet handed out.
    /// Nothing changes when the file cannot be removed.
    fn evict_oldest(&mut self) -> Result<u64, SpoolError> {
        let id = self.segments.front().expect("a segment to evict").id;
        let path = self.segment_path(id);
        fs::remove_file(&path).map_err(SpoolError::at(&path))?;
        let mut samples = 0;
        while self.unread.front().is_some_and(|r| r.segment == id) {
            let place = self.unread.pop_front().expect("checked");
            samples += u64::from(place.samples);
            if let Some((_, body)) = self.fresh.pop_front() {
                self.fresh_bytes -= body.len();
            }
        }
        self.unread_samples -= samples;
        self.forget_oldest();
        Ok(samples)
    }

    /// Forgets the oldest segment, whose file is gone and whose records are no longer in
    /// `unread`.
    fn forget_oldest(&mut self) {
        let segment = self.segments.pop_front().expect("a segment to forget");
        if let Some(sync) = &self.sync {
            sync.forget(&self.segment_path(segment.id));
        }
        if self
            .reader
            .as_ref()
            .is_some_and(|(id, _)| *id == segment.id)
        {
            self.reader = None;
        }
        self.bytes -= segment.bytes;
    }

    /// Hands out the oldest record not yet handed out. A record that reads back damaged or is
    /// gone (file missing or cut) is skipped (counted in [`LaneSpool::skipped`]) and the next
    /// one tried; another read error leaves the record first in line and is returned, to be
    /// tried again later.
    pub fn take(&mut self) -> Result<Option<SpooledBatch>, SpoolError> {
        if let Some(fresh) = self.take_fresh() {
            return Ok(Some(fresh));
        }
        while let Some(place) = self.unread.pop_front() {
            let path = self.segment_path(place.segment);
            let outcome = match self.read_at(place) {
                Ok(outcome) => Ok(outcome),
                // The file or the record is gone for good: as damaged as it gets.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    Err(e.to_string())
                }
                Err(source) => {
                    self.reader = None;
                    self.unread.push_front(place);
                    return Err(SpoolError::Io {
                        path: path.display().to_string(),
                        error: source,
                    });
                }
            };
            self.unread_samples -= u64::from(place.samples);
            self.taken = Some(place);
            let why = match outcome {
                Ok(ReadOutcome::Record { meta, body }) => {
                    let body = body.into();
                    return Ok(Some(SpooledBatch { meta, body }));
                }
                Ok(damaged) => format!("{damaged:?}"),
                Err(gone) => gone,
            };
            self.skipped.records += 1;
            self.skipped.samples += u64::from(place.samples);
            tracing::error!(segment = %path.display(), offset = place.offset, why, "spool: a record could not be read back; skipped");
        }
        Ok(None)
    }

    fn read_at(&mut self, place: RecordPlace) -> io::Result<ReadOutcome> {
        if self
            .reader
            .as_ref()
            .is_none_or(|(id, _)| *id != place.segment)
        {
            let file = File::open(self.segment_path(place.segment))?;
            self.reader = Some((place.segment, file));
        }
        let (_, file) = self.reader.as_ref().expect("opened above");
        let mut bytes = vec![0u8; place.len as usize];
        file.read_exact_at(&mut bytes, place.offset)?;
        record::read(&mut &bytes[..])
    }

    /// The records handed out so far are done with (delivered, refused or dropped): they are
    /// acknowledged, and segments with nothing left to send are deleted. With a
    /// [`SpoolSync`] the acknowledgement is written by its next round (a kill before it sends
    /// those records again: at most a `sync_interval` of deliveries) and only deleting a
    /// segment leaves the runtime for the disk; without one it is written at once.
    pub fn finish(&mut self) -> Result<(), SpoolError> {
        let Some(place) = self.taken.take() else {
            return Ok(());
        };
        let ack = ack_bytes(place.segment, place.offset + place.len);
        match &self.sync {
            Some(sync) => sync.write_later(&self.ack_path, &self.ack, &ack, &self.unacked),
            None => disk_io(|| self.ack.write_all_at(&ack, 0))
                .map_err(SpoolError::at(&self.ack_path))?,
        }
        let frontier = self
            .unread
            .front()
            .map(|r| r.segment)
            .or(self.writer.as_ref().map(|(id, _)| *id))
            .unwrap_or(u64::MAX);
        if self.segments.front().is_some_and(|s| s.id < frontier) {
            disk_io(|| self.delete_segments_before(frontier))?;
        }
        self.publish_unacked();
        Ok(())
    }

    /// Tells the fsync rounds since when the oldest unacknowledged record waits.
    fn publish_unacked(&self) {
        let oldest = self.oldest_unacked();
        self.unacked.set(oldest.map(|place| place.written_at));
    }

    /// The oldest record not yet acknowledged: the one in flight, or else the next to send.
    fn oldest_unacked(&self) -> Option<RecordPlace> {
        self.taken.or(self.unread.front().copied())
    }

    /// Deletes the segments older than `frontier` (all of their records acknowledged).
    fn delete_segments_before(&mut self, frontier: u64) -> Result<(), SpoolError> {
        while let Some(segment) = self.segments.front().filter(|s| s.id < frontier) {
            let path = self.segment_path(segment.id);
            fs::remove_file(&path).map_err(SpoolError::at(&path))?;
            self.forget_oldest();
        }
        Ok(())
    }

    /// Persists the open segment and the acknowledgement: through the [`SpoolSync`] (a round
    /// of its own, so an acknowledgement left to it is written first), or directly.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(sync) = &self.sync {
            if let Some((id, file)) = &self.writer {
                sync.written(&self.segment_path(*id), file, &self.unacked);
            }
            return match sync.sync_now() {
                true => Ok(()),
                false => Err(SpoolError::Io {
                    path: self.dir.display().to_string(),
                    error: io::Error::other("fsync failed (logged)"),
                }),
            };
        }
        if let Some((id, file)) = &self.writer {
            let path = self.segment_path(*id);
            file.sync_data().map_err(SpoolError::at(&path))?;
        }
        self.ack.sync_data().map_err(SpoolError::at(&self.ack_path))
    }

    /// Bytes on disk (segment files).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// True while the spool holds less than `max_bytes`.
    pub fn has_room(&self) -> bool {
        self.bytes < self.max_bytes
    }

    /// Samples in records not yet handed out.
    pub fn unread_samples(&self) -> u64 {
        self.unread_samples
    }

    /// Oldest sample timestamp of the next record to hand out.
    pub fn next_oldest_ms(&self) -> Option<i64> {
        self.unread.front().map(|r| r.oldest_ms)
    }

    /// Records (and the samples their headers promised) skipped because they could not be
    /// read back, since the spool was opened.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }
}
