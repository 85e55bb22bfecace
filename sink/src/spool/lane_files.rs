//! A lane directory's files as names and bytes: segment files `<id:020>.seg` in send order,
//! and the acknowledgement file `ack` (segment id and offset with a CRC, so a torn write reads
//! as "none").
//!
//! Owns the naming, the acknowledgement's format and how a new segment's blocks are reserved;
//! it must not decide when files are written, read or deleted (that is [`super::lane_spool`]).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const SEGMENT_SUFFIX: &str = ".seg";
pub(super) const ACK_FILE: &str = "ack";

/// Reserves `bytes` of blocks for a new segment without changing its length (what reads back,
/// and recovery, see is only what was written). The filesystem then lays the segment out once
/// instead of at every write's delayed allocation. Best effort for the caller: a filesystem
/// that cannot (or a disk too full to) reserve them leaves the writes to allocate as they go.
pub(super) fn reserve_blocks(file: &File, bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(bytes).map_err(io::Error::other)?;
    // SAFETY: `fallocate` only reads its integer arguments and acts on the open descriptor,
    // which `file` keeps open for the call.
    let status = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The file of segment `id` in a lane directory.
pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
}

/// Segment ids in `dir`, ascending (other files are left alone).
pub(super) fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The first segment id a lane directory has not used: past its segments and past its
/// acknowledgement (which may name a segment already deleted).
pub(super) fn first_free_id(dir: &Path) -> io::Result<u64> {
    let past_segments = segment_ids(dir)?.last().map_or(1, |id| id + 1);
    let past_ack = match File::open(dir.join(ACK_FILE)) {
        Ok(file) => read_ack(&file)?.map_or(1, |(segment, _)| segment + 1),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
        Err(e) => return Err(e),
    };
    Ok(past_segments.max(past_ack))
}

/// The acknowledgement: segment id and offset, with a CRC so a torn write reads as "none".
pub(super) fn ack_bytes(segment: u64, offset: u64) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&segment.to_le_bytes());
    bytes[8..16].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

pub(super) fn read_ack(mut file: &File) -> io::Result<Option<(u64, u64)>> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    if bytes.len() < 20 {
        return Ok(None);
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..16]) != crc {
        tracing::warn!("spool: acknowledgement damaged; records may be sent twice");
        return Ok(None);
    }
    let segment = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let offset = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    Ok(Some((segment, offset)))
}
