//! Joins CRI `P` (partial) chunks with the `F` chunk that ends them, one pending line per output
//! stream, under a byte cap: a longer line is truncated (at a UTF-8 boundary), flagged and counted.
//! Owns only the joining state; it never reads files and never decides what to do with a flagged line.

use std::borrow::Cow;

use super::line::{CriLine, CriStream};

/// Default cap on a joined line: Loki's default `max_line_size` (256 KiB).
pub const DEFAULT_MAX_JOINED_BYTES: usize = 256 * 1024;

/// A complete container-log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedLine<'a> {
    /// Timestamp of the line's first chunk, nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    pub stream: CriStream,
    /// Borrowed from the input when the line was a single `F` chunk, owned when joined.
    pub message: Cow<'a, [u8]>,
    /// The line was longer than the cap and has been cut.
    pub truncated: bool,
}

#[derive(Debug)]
struct PendingLine {
    timestamp_ns: i64,
    bytes: Vec<u8>,
    truncated: bool,
}

/// Joins partial chunks per stream. Feed it every parsed line of one file, in file order.
#[derive(Debug)]
pub struct PartialJoiner {
    max_bytes: usize,
    pending_stdout: Option<PendingLine>,
    pending_stderr: Option<PendingLine>,
    truncated_lines: u64,
}

impl PartialJoiner {
    /// A joiner that caps joined lines at `max_bytes` (at least 1).
    pub fn new(max_bytes: usize) -> Self {
        PartialJoiner {
            max_bytes: max_bytes.max(1),
            pending_stdout: None,
            pending_stderr: None,
            truncated_lines: 0,
        }
    }

    /// Adds one chunk. Returns the complete line when `line` is an `F` chunk, `None` after a `P`.
    pub fn push<'a>(&mut self, line: CriLine<'a>) -> Option<JoinedLine<'a>> {
        let max_bytes = self.max_bytes;
        let slot = match line.stream {
            CriStream::Stdout => &mut self.pending_stdout,
            CriStream::Stderr => &mut self.pending_stderr,
        };
        if line.partial {
            let pending = slot.get_or_insert_with(|| PendingLine {
                timestamp_ns: line.timestamp_ns,
                bytes: Vec::new(),
                truncated: false,
            });
            append_capped(pending, line.message, max_bytes);
            return None;
        }
        let joined = match slot.take() {
            Some(mut pending) => {
                append_capped(&mut pending, line.message, max_bytes);
                JoinedLine {
                    timestamp_ns: pending.timestamp_ns,
                    stream: line.stream,
                    message: Cow::Owned(pending.bytes),
                    truncated: pending.truncated,
                }
            }
            None => {
                let keep = utf8_cut(line.message, max_bytes);
                JoinedLine {
                    timestamp_ns: line.timestamp_ns,
                    stream: line.stream,
                    message: Cow::Borrowed(&line.message[..keep]),
                    truncated: keep < line.message.len(),
                }
            }
        };
        if joined.truncated {
            self.truncated_lines += 1;
        }
        Some(joined)
    }

    /// Emits the lines still waiting for their `F` chunk (stdout first), e.g. when the file was
    /// rotated away or the tailer stops. The joiner is empty afterwards.
    pub fn flush_pending(&mut self) -> Vec<JoinedLine<'static>> {
        let mut flushed = Vec::new();
        for (stream, slot) in [
            (CriStream::Stdout, &mut self.pending_stdout),
            (CriStream::Stderr, &mut self.pending_stderr),
        ] {
            if let Some(pending) = slot.take() {
                if pending.truncated {
                    self.truncated_lines += 1;
                }
                flushed.push(JoinedLine {
                    timestamp_ns: pending.timestamp_ns,
                    stream,
                    message: Cow::Owned(pending.bytes),
                    truncated: pending.truncated,
                });
            }
        }
        flushed
    }

    /// Bytes held for lines not yet complete.
    pub fn pending_bytes(&self) -> usize {
        [&self.pending_stdout, &self.pending_stderr]
            .into_iter()
            .flatten()
            .map(|pending| pending.bytes.len())
            .sum()
    }

    /// Lines emitted truncated since the joiner was created.
    pub fn truncated_lines(&self) -> u64 {
        self.truncated_lines
    }
}

fn append_capped(pending: &mut PendingLine, chunk: &[u8], max_bytes: usize) {
    if pending.truncated {
        return;
    }
    // Copy at most one byte past the cap: enough to see whether the cut splits a character.
    let room = (max_bytes + 1).saturating_sub(pending.bytes.len());
    pending
        .bytes
        .extend_from_slice(&chunk[..chunk.len().min(room)]);
    if pending.bytes.len() > max_bytes {
        let keep = utf8_cut(&pending.bytes, max_bytes);
        pending.bytes.truncate(keep);
        pending.truncated = true;
    }
}

/// The largest length `<= max_bytes` that does not end inside a UTF-8 sequence (assuming the
/// bytes are UTF-8; at most three bytes are given back).
fn utf8_cut(bytes: &[u8], max_bytes: usize) -> usize {
    if bytes.len() <= max_bytes {
        return bytes.len();
    }
    let mut cut = max_bytes;
    let mut backed_off = 0;
    while cut > 0 && backed_off < 3 && bytes[cut] & 0b1100_0000 == 0b1000_0000 {
        cut -= 1;
        backed_off += 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(stream: CriStream, partial: bool, timestamp_ns: i64, message: &[u8]) -> CriLine<'_> {
        CriLine {
            timestamp_ns,
            stream,
            partial,
            message,
        }
    }

    #[test]
    fn full_line_passes_through_borrowed() {
        let mut joiner = PartialJoiner::new(64);
        let joined = joiner
            .push(chunk(CriStream::Stdout, false, 5, b"whole"))
            .unwrap();
        assert!(matches!(joined.message, Cow::Borrowed(b"whole")));
        assert!(!joined.truncated);
        assert_eq!(joiner.truncated_lines(), 0);
    }

    #[test]
    fn joins_partials_per_stream_keeping_first_timestamp() {
        let mut joiner = PartialJoiner::new(64);
        assert!(joiner
            .push(chunk(CriStream::Stdout, true, 1, b"out-1 "))
            .is_none());
        assert!(joiner
            .push(chunk(CriStream::Stderr, true, 2, b"err-1 "))
            .is_none());
        assert!(joiner
            .push(chunk(CriStream::Stdout, true, 3, b"out-2 "))
            .is_none());
        assert_eq!(joiner.pending_bytes(), 18);
        let stderr = joiner
            .push(chunk(CriStream::Stderr, false, 4, b"err-2"))
            .unwrap();
        assert_eq!(&*stderr.message, b"err-1 err-2");
        assert_eq!((stderr.timestamp_ns, stderr.stream), (2, CriStream::Stderr));
        let stdout = joiner
            .push(chunk(CriStream::Stdout, false, 5, b"out-3"))
            .unwrap();
        assert_eq!(&*stdout.message, b"out-1 out-2 out-3");
        assert_eq!(stdout.timestamp_ns, 1);
        assert_eq!(joiner.pending_bytes(), 0);
    }

    #[test]
    fn truncates_joined_line_at_cap_and_counts_it() {
        let mut joiner = PartialJoiner::new(10);
        joiner.push(chunk(CriStream::Stdout, true, 1, b"0123456"));
        joiner.push(chunk(CriStream::Stdout, true, 2, b"789abcdef"));
        joiner.push(chunk(CriStream::Stdout, true, 3, b"ignored"));
        assert_eq!(joiner.pending_bytes(), 10);
        let joined = joiner
            .push(chunk(CriStream::Stdout, false, 4, b"end"))
            .unwrap();
        assert_eq!(&*joined.message, b"0123456789");
        assert!(joined.truncated);
        assert_eq!(joiner.truncated_lines(), 1);
        let next = joiner
            .push(chunk(CriStream::Stdout, false, 5, b"short"))
            .unwrap();
        assert!(!next.truncated);
        assert_eq!(joiner.truncated_lines(), 1);
    }

    #[test]
    fn truncates_single_full_line_without_splitting_characters() {
        let mut joiner = PartialJoiner::new(4);
        // "ab" + "é" (2 bytes) + "c": a cut at 4 would keep "abé" exactly.
        let joined = joiner
            .push(chunk(CriStream::Stdout, false, 1, "abéc".as_bytes()))
            .unwrap();
        assert_eq!(&*joined.message, "abé".as_bytes());
        // A cut at 3 would split "é": back off to "ab".
        let mut joiner = PartialJoiner::new(3);
        let joined = joiner
            .push(chunk(CriStream::Stdout, false, 1, "abéc".as_bytes()))
            .unwrap();
        assert_eq!(&*joined.message, b"ab");
        assert!(joined.truncated);
    }

    #[test]
    fn flush_emits_unterminated_lines_and_empties_the_joiner() {
        let mut joiner = PartialJoiner::new(64);
        joiner.push(chunk(CriStream::Stderr, true, 7, b"half"));
        let flushed = joiner.flush_pending();
        assert_eq!(flushed.len(), 1);
        assert_eq!(&*flushed[0].message, b"half");
        assert_eq!(flushed[0].stream, CriStream::Stderr);
        assert!(joiner.flush_pending().is_empty());
        assert_eq!(joiner.pending_bytes(), 0);
    }
}
