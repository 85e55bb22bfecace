//! The spool's on-disk record: a fixed header, then an opaque body.
//!
//! ```text
//! 0  magic "MTS1" (body as it is sent) or "MTS2" (body in the long-copy form)
//! 4  body length    u32 LE
//! 8  samples        u32 LE
//! 12 oldest ms      i64 LE
//! 20 newest ms      i64 LE
//! 28 CRC-32 (IEEE)  u32 LE, over bytes 4..28 and the body
//! 32 body
//! ```
//!
//! The magic says the body's [`BodyForm`]: a remote-write body is spooled in the long-copy form
//! (`meshtap_remotewrite::long_copies`, a fifth of the bytes of a scraped body) and made
//! snappy's own when it is sent; records of either magic are read, so a spool written before
//! the long-copy form was introduced is still sent after an upgrade.
//!
//! Owns writing and checking one record. A record cut short by a crash reads as
//! [`ReadOutcome::Truncated`], damaged bytes as [`ReadOutcome::Corrupt`]; this module never
//! decides what to do about either (see `super::lane_spool`).

use std::fs::File;
use std::io::{self, Read, Write};

use bytes::Bytes;

const MAGIC_AS_SENT: [u8; 4] = *b"MTS1";
const MAGIC_LONG_COPIES: [u8; 4] = *b"MTS2";
pub const HEADER_LEN: usize = 32;
/// Larger bodies are refused when written and treated as damage when read.
pub const MAX_BODY_LEN: usize = 256 << 20;

/// How a record's body is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyForm {
    /// The bytes to send.
    #[default]
    AsSent,
    /// A remote-write body in the long-copy form, to expand before sending.
    LongCopies,
}

impl BodyForm {
    fn magic(self) -> [u8; 4] {
        match self {
            BodyForm::AsSent => MAGIC_AS_SENT,
            BodyForm::LongCopies => MAGIC_LONG_COPIES,
        }
    }

    fn of_magic(magic: &[u8]) -> Option<BodyForm> {
        [BodyForm::AsSent, BodyForm::LongCopies]
            .into_iter()
            .find(|form| form.magic() == magic)
    }
}

/// What a record says about its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub samples: u32,
    pub oldest_ms: i64,
    pub newest_ms: i64,
    pub form: BodyForm,
}

/// A record to append: what its header says, its body as written, and the body as it is sent
/// when that differs (a long-copy body's snappy form): kept in memory for the sender instead,
/// so a record taken before it leaves memory needs no expansion.
pub struct NewRecord {
    pub meta: RecordMeta,
    pub body: Bytes,
    pub as_sent: Option<Bytes>,
}

impl NewRecord {
    /// A record sent as it is written.
    pub fn new(meta: RecordMeta, body: Bytes) -> NewRecord {
        NewRecord {
            meta,
            body,
            as_sent: None,
        }
    }
}

/// The header of a record of `body`; the record is the header followed by the body.
pub fn header(meta: RecordMeta, body: &[u8]) -> [u8; HEADER_LEN] {
    assert!(body.len() <= MAX_BODY_LEN, "spool record body too large");
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&meta.form.magic());
    header[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&meta.samples.to_le_bytes());
    header[12..20].copy_from_slice(&meta.oldest_ms.to_le_bytes());
    header[20..28].copy_from_slice(&meta.newest_ms.to_le_bytes());
    let crc = checksum(&header[4..28], body);
    header[28..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// A whole record, header then body (the spool writes the two parts without joining them).
#[cfg(test)]
pub fn encode(meta: RecordMeta, body: &[u8]) -> Vec<u8> {
    let mut out = header(meta, body).to_vec();
    out.extend_from_slice(body);
    out
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(body);
    hasher.finalize()
}

/// Writes all of `parts`, in order, with as few `write` calls as the file takes.
pub fn write_all_parts(file: &mut File, parts: &[&[u8]]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    while !parts.is_empty() {
        let slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        let mut written = match file.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            if written >= parts[0].len() {
                written -= parts[0].len();
                parts.remove(0);
            } else {
                parts[0] = &parts[0][written..];
                written = 0;
            }
        }
    }
    Ok(())
}

/// The result of reading at one offset.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A whole, intact record.
    Record { meta: RecordMeta, body: Vec<u8> },
    /// Nothing more: the reader was exactly at the end.
    End,
    /// The file ends inside a record (a write cut short).
    Truncated,
    /// The bytes are not a record (bad magic, impossible length or checksum mismatch).
    Corrupt(&'static str),
}

/// Reads one record from `reader`.
pub fn read(reader: &mut impl Read) -> io::Result<ReadOutcome> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(reader, &mut header)?;
    if got == 0 {
        return Ok(ReadOutcome::End);
    }
    if got < HEADER_LEN {
        return Ok(ReadOutcome::Truncated);
    }
    let Some(form) = BodyForm::of_magic(&header[..4]) else {
        return Ok(ReadOutcome::Corrupt("bad magic"));
    };
    let field = |at: usize| -> [u8; 8] { header[at..at + 8].try_into().expect("8 bytes") };
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let len = word(4) as usize;
    if len > MAX_BODY_LEN {
        return Ok(ReadOutcome::Corrupt("impossible body length"));
    }
    let meta = RecordMeta {
        samples: word(8),
        oldest_ms: i64::from_le_bytes(field(12)),
        newest_ms: i64::from_le_bytes(field(20)),
        form,
    };
    let mut body = vec![0u8; len];
    if read_full(reader, &mut body)? < len {
        return Ok(ReadOutcome::Truncated);
    }
    if checksum(&header[4..28], &body) != word(28) {
        return Ok(ReadOutcome::Corrupt("checksum mismatch"));
    }
    Ok(ReadOutcome::Record { meta, body })
}

/// Fills `buf` as far as the reader goes; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: RecordMeta = RecordMeta {
        samples: 3,
        oldest_ms: -5,
        newest_ms: 1_700_000_000_000,
        form: BodyForm::AsSent,
    };

    fn read_bytes(bytes: &[u8]) -> ReadOutcome {
        read(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn a_record_reads_back_and_then_the_end() {
        let long = RecordMeta {
            form: BodyForm::LongCopies,
            ..META
        };
        let mut bytes = encode(META, b"body");
        bytes.extend(encode(long, b""));
        assert_eq!(
            &bytes[..4],
            b"MTS1",
            "the form a spool of earlier versions holds"
        );
        let mut reader = &bytes[..];
        for (expected_meta, expected) in [(META, &b"body"[..]), (long, b"")] {
            match read(&mut reader).unwrap() {
                ReadOutcome::Record { meta, body } => {
                    assert_eq!(meta, expected_meta);
                    assert_eq!(body, expected);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(read(&mut reader).unwrap(), ReadOutcome::End));
    }

    #[test]
    fn every_cut_is_truncated_and_every_flipped_bit_is_caught() {
        let bytes = encode(META, b"some body bytes");
        for cut in 1..bytes.len() {
            assert!(
                matches!(read_bytes(&bytes[..cut]), ReadOutcome::Truncated),
                "cut at {cut}"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let outcome = read_bytes(&damaged);
            assert!(
                matches!(outcome, ReadOutcome::Corrupt(_) | ReadOutcome::Truncated),
                "bit {bit}: {outcome:?}"
            );
        }
    }
}
