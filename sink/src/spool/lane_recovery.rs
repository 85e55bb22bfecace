//! Opening a lane's spool: the directory and acknowledgement file made or found, segments the
//! acknowledgement says are consumed deleted, and every unsent record of the others found again
//! (a record cut short by a crash, or damaged, ends its segment: the rest is cut off and
//! counted). A child of `lane_spool`, whose state it fills in; it must not append or send.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::super::lane_files::{read_ack, segment_ids, ACK_FILE};
use super::super::record::{self, ReadOutcome, HEADER_LEN};
use super::super::SpoolError;
use super::{LaneSpool, RecordPlace, Recovered, Segment, Skipped};

impl LaneSpool {
    /// Opens (creating it if needed) the spool in `dir` and recovers what a previous run left.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> Result<(LaneSpool, Recovered), SpoolError> {
        let io_err = SpoolError::at;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ack_path = dir.join(ACK_FILE);
        let ack = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ack_path)
            .map_err(io_err(&ack_path))?;
        let acked = read_ack(&ack).map_err(io_err(&ack_path))?;
        // New segments number on past the acknowledged one even when every file is gone, or
        // the stale acknowledgement would count them as already sent.
        let mut spool = LaneSpool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            unread: VecDeque::new(),
            fresh: VecDeque::new(),
            fresh_bytes: 0,
            taken: None,
            writer: None,
            reader: None,
            next_segment: acked.map_or(1, |(segment, _)| segment + 1),
            bytes: 0,
            unread_samples: 0,
            ack,
            ack_path,
            skipped: Skipped::default(),
            sync: None,
            unacked: Arc::default(),
            last_round: None,
            evicts: true,
        };
        let mut recovered = Recovered::default();
        for id in segment_ids(dir).map_err(io_err(dir))? {
            spool.next_segment = spool.next_segment.max(id + 1);
            let path = spool.segment_path(id);
            let (done_segment, start) = match acked {
                Some((seg, _)) if id < seg => (true, 0),
                Some((seg, offset)) if id == seg => (false, offset),
                _ => (false, 0),
            };
            if done_segment {
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            spool
                .recover_segment(id, start, &mut recovered)
                .map_err(io_err(&path))?;
        }
        spool.publish_unacked();
        Ok((spool, recovered))
    }

    /// Reads a segment's records from `start` on, cutting off a damaged or cut-short end.
    fn recover_segment(&mut self, id: u64, start: u64, found: &mut Recovered) -> io::Result<()> {
        let path = self.segment_path(id);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut reader = BufReader::new(&file);
        let records_before = self.unread.len();
        let mut offset = start.min(size);
        reader.seek(SeekFrom::Start(offset))?;
        loop {
            match record::read(&mut reader)? {
                ReadOutcome::Record { meta, body } => {
                    let len = (HEADER_LEN + body.len()) as u64;
                    self.unread.push_back(RecordPlace {
                        segment: id,
                        offset,
                        len,
                        samples: meta.samples,
                        oldest_ms: meta.oldest_ms,
                        written_at: Instant::now(),
                    });
                    self.unread_samples += u64::from(meta.samples);
                    found.records += 1;
                    found.samples += u64::from(meta.samples);
                    offset += len;
                }
                ReadOutcome::End => break,
                outcome => {
                    if let ReadOutcome::Corrupt(why) = outcome {
                        found.corrupt_records += 1;
                        tracing::error!(segment = %path.display(), offset, why, "spool: damaged record; the rest of the segment is discarded");
                    } else {
                        tracing::warn!(segment = %path.display(), offset, "spool: record cut short (crash while writing); discarded");
                    }
                    found.discarded_bytes += size - offset;
                    file.set_len(offset)?;
                    break;
                }
            }
        }
        if self.unread.len() == records_before {
            // Nothing left to send in it.
            drop(reader);
            fs::remove_file(&path)?;
            return Ok(());
        }
        self.bytes += offset;
        self.segments.push_back(Segment { id, bytes: offset });
        Ok(())
    }
}
