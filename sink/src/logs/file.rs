//! One tailed container-log file: its open handle (kept across renames and deletion, so a
//! rotated file is read to its end) or, for a kubelet-compressed rotated file (`.gz`), a
//! decompressing reader; the read offset, the offset a restart must resume from (no `P` chunk
//! pending), the first line's fingerprint (to recognise the file once rotated and compressed),
//! the CRI `P`/`F` joiner, and copytruncate detection.
//!
//! Owns reading complete lines and turning them into Loki entries; it never sends anything and
//! never writes positions.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::GzDecoder;

use meshtap_logformat::cri::{parse_cri_line, PartialJoiner, PodLogPath};
use meshtap_logformat::loki::LogEntry;
use meshtap_logformat::{log_entry_from_line, LineFormat};

use super::positions::FileId;

/// Most bytes read from one file per read call.
const READ_CHUNK: usize = 1024 * 1024;

/// Bytes of a file's start within which its first line must end to give a fingerprint (more
/// than a CRI line's 16 KiB).
const HEAD_BYTES: usize = 32 * 1024;

/// Where a tailed file's bytes come from.
enum Source {
    /// A plain file, read where it stands (it may grow, shrink or be renamed).
    Plain(File),
    /// A compressed rotated file, decompressed as it is read (it never changes).
    Gzip(Box<GzStream>),
}

impl Source {
    /// The file's length; a compressed file's is not known before the end and never shrinks.
    fn len(&self) -> std::io::Result<u64> {
        match self {
            Source::Plain(file) => Ok(file.metadata()?.len()),
            Source::Gzip(_) => Ok(u64::MAX),
        }
    }

    /// Replaces `buf` with up to `want` bytes from `offset`.
    fn read_at(&mut self, offset: u64, want: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        match self {
            Source::Plain(file) => {
                file.seek(SeekFrom::Start(offset))?;
                file.take(want as u64).read_to_end(buf)?;
            }
            Source::Gzip(gz) => gz.read_at(offset, want, buf)?,
        }
        Ok(())
    }
}

/// A gzip stream read forward, keeping the bytes from the last offset asked for (a line cut
/// at the end of a read is asked for again), so memory stays at one read's worth.
struct GzStream {
    decoder: GzDecoder<File>,
    window: Vec<u8>,
    window_start: u64,
    at_end: bool,
}

impl GzStream {
    fn read_at(&mut self, offset: u64, want: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if offset < self.window_start {
            return Err(std::io::Error::other(
                "a compressed file is read forward only",
            ));
        }
        let skip = offset - self.window_start;
        if skip <= self.window.len() as u64 {
            self.window.drain(..skip as usize);
        } else {
            let beyond = skip - self.window.len() as u64;
            self.window.clear();
            let skipped =
                std::io::copy(&mut (&mut self.decoder).take(beyond), &mut std::io::sink())?;
            self.at_end |= skipped < beyond;
        }
        self.window_start = offset;
        let mut chunk = [0u8; 64 * 1024];
        while self.window.len() < want && !self.at_end {
            match self.decoder.read(&mut chunk)? {
                0 => self.at_end = true,
                n => self.window.extend_from_slice(&chunk[..n]),
            }
        }
        buf.extend_from_slice(&self.window[..want.min(self.window.len())]);
        Ok(())
    }
}

/// The fingerprint of a file's first line (with its `\n`), if `head` holds a whole one.
pub fn first_line_hash(head: &[u8]) -> Option<u64> {
    let end = memchr::memchr(b'\n', head)?;
    Some(twox_hash::XxHash3_64::oneshot(&head[..=end]))
}

/// The first bytes of the file at `path`, decompressed when it is a `.gz`.
pub fn head_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    if path.extension().is_some_and(|e| e == "gz") {
        GzDecoder::new(file)
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut head)?;
    } else {
        file.take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    }
    Ok(head)
}

/// What one [`TailedFile::read_lines`] call saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub bytes: u64,
    pub lines: u64,
    /// Lines that are not CRI lines (skipped).
    pub malformed: u64,
    /// The file had shrunk below the read offset (copytruncate): reading restarted at 0.
    pub truncated: bool,
    /// Reading stopped because the budget was used up (more may be waiting).
    pub budget_spent: bool,
}

/// A file being tailed.
pub struct TailedFile {
    pub path: String,
    pub id: FileId,
    /// Namespace, pod and container, read from the path when the file was opened.
    pub namespace: String,
    pub pod: String,
    pub container: String,
    source: Source,
    /// Fingerprint of the first line, once the file has one.
    first_line: Option<u64>,
    /// Bytes consumed: everything before it was read as complete lines.
    offset: u64,
    /// Where a restart resumes: the end of the last line after which no `P` chunk was pending.
    resume_offset: u64,
    joiner: PartialJoiner,
    format: LineFormat,
    buffer: Vec<u8>,
}

/// Why a file could not be tailed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: not a pod log path: {message}")]
    NotAPodLog { path: String, message: String },
}

impl TailedFile {
    /// Opens `path` and positions it at `offset` (0 when it is larger than the file). A `.gz`
    /// rotated file is decompressed as it is read; its offsets count decompressed bytes.
    pub fn open(
        path: &Path,
        offset: u64,
        max_line_bytes: usize,
        format: LineFormat,
    ) -> Result<TailedFile, OpenError> {
        let text = path.display().to_string();
        let pod_path = PodLogPath::parse(&text).map_err(|e| OpenError::NotAPodLog {
            path: text.clone(),
            message: e.to_string(),
        })?;
        let (namespace, pod, container) = (
            pod_path.namespace.to_owned(),
            pod_path.pod.to_owned(),
            pod_path.container.to_owned(),
        );
        let io = |error| OpenError::Io {
            path: text.clone(),
            error,
        };
        let file = File::open(path).map_err(io)?;
        let id = FileId::of(&file.metadata().map_err(io)?);
        let mut source = if pod_path.compressed {
            Source::Gzip(Box::new(GzStream {
                decoder: GzDecoder::new(file),
                window: Vec::new(),
                window_start: 0,
                at_end: false,
            }))
        } else {
            Source::Plain(file)
        };
        let offset = if offset <= source.len().map_err(io)? {
            offset
        } else {
            0
        };
        let mut head = Vec::new();
        source.read_at(0, HEAD_BYTES, &mut head).map_err(io)?;
        Ok(TailedFile {
            path: text.clone(),
            id,
            namespace,
            pod,
            container,
            source,
            first_line: first_line_hash(&head),
            offset,
            resume_offset: offset,
            joiner: PartialJoiner::new(max_line_bytes),
            format,
            buffer: Vec::new(),
        })
    }

    /// The offset a restart must resume from.
    pub fn resume_offset(&self) -> u64 {
        self.resume_offset
    }

    /// The first line's fingerprint (read once the file has a whole first line).
    pub fn first_line(&mut self) -> Option<u64> {
        if self.first_line.is_none() {
            let mut head = Vec::new();
            if self.source.read_at(0, HEAD_BYTES, &mut head).is_ok() {
                self.first_line = first_line_hash(&head);
            }
        }
        self.first_line
    }

    /// Lines joined by the joiner that were over the line cap and cut.
    pub fn lines_cut(&self) -> u64 {
        self.joiner.truncated_lines()
    }

    /// Reads complete lines (at most about `budget` bytes), joining `P` chunks, and hands each
    /// finished line to `sink` as an entry. An incomplete last line is left for the next call.
    pub fn read_lines(
        &mut self,
        budget: usize,
        sink: &mut dyn FnMut(LogEntry),
    ) -> std::io::Result<ReadStats> {
        let mut stats = ReadStats::default();
        if self.source.len()? < self.offset {
            self.restart_truncated(sink);
            stats.truncated = true;
        }
        let mut remaining = budget.max(1);
        while remaining > 0 {
            let want = READ_CHUNK.min(remaining);
            self.source.read_at(self.offset, want, &mut self.buffer)?;
            if self.buffer.is_empty() {
                break;
            }
            if self.buffer.len() == remaining {
                stats.budget_spent = true;
            }
            let complete = match self.buffer.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                // A line longer than a whole chunk: take the chunk as a line. A shorter one
                // waits for more data or a larger budget.
                None if self.buffer.len() == READ_CHUNK => READ_CHUNK,
                None => break,
            };
            self.take_lines(complete, sink, &mut stats);
            self.offset += complete as u64;
            stats.bytes += complete as u64;
            remaining = remaining.saturating_sub(complete);
            if complete < want {
                break;
            }
        }
        Ok(stats)
    }

    /// The file shrank below the read offset (copytruncate): emits the chunks waiting for
    /// their end and starts over at 0.
    fn restart_truncated(&mut self, sink: &mut dyn FnMut(LogEntry)) {
        self.offset = 0;
        self.resume_offset = 0;
        self.first_line = None;
        for joined in self.joiner.flush_pending() {
            sink(log_entry_from_line(joined, self.format));
        }
    }

    /// Parses and joins the first `complete` bytes of the buffer (whole lines read at
    /// `offset`), hands finished lines to `sink` and moves the resume offset past every line
    /// that leaves no chunk pending.
    fn take_lines(
        &mut self,
        complete: usize,
        sink: &mut dyn FnMut(LogEntry),
        stats: &mut ReadStats,
    ) {
        let mut start = 0;
        for end in memchr_lines(&self.buffer[..complete]) {
            let raw = &self.buffer[start..end];
            start = end;
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            stats.lines += 1;
            match parse_cri_line(line) {
                Ok(cri) => {
                    if let Some(joined) = self.joiner.push(cri) {
                        sink(log_entry_from_line(joined, self.format));
                    }
                }
                Err(_) => stats.malformed += 1,
            }
            if self.joiner.pending_bytes() == 0 {
                self.resume_offset = self.offset + end as u64;
            }
        }
    }

    /// Emits `P` chunks still waiting for their `F` (the file is being released).
    pub fn flush_pending(&mut self, sink: &mut dyn FnMut(LogEntry)) {
        for joined in self.joiner.flush_pending() {
            sink(log_entry_from_line(joined, self.format));
        }
        self.resume_offset = self.offset;
    }
}

/// End offsets (exclusive, after the `\n`) of the lines in `data`; the last may lack a `\n`.
fn memchr_lines(data: &[u8]) -> Vec<usize> {
    let mut ends: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    if ends.last().copied().unwrap_or(0) < data.len() {
        ends.push(data.len());
    }
    ends
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A file is known by the hash of its first line in the positions file: a build whose hash
    /// differed would read every file from the start again (the value an independent XXH3
    /// implementation gives).
    #[test]
    fn first_line_hashes_stay_the_same_across_builds() {
        let head = b"[2026-12-07T07:00:00.000Z] \"GET /productpage HTTP/1.1\" 200\nnext";
        assert_eq!(first_line_hash(head), Some(0x5da9_aa68_16fe_80e8));
        assert_eq!(first_line_hash(b"no line end yet"), None);
    }

    #[test]
    fn a_gzip_stream_is_read_forward_with_the_last_bytes_asked_for_again() {
        let dir = std::env::temp_dir().join(format!("meshtap-gz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rotated.gz");
        let text: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let mut stream = GzStream {
            decoder: GzDecoder::new(File::open(&path).unwrap()),
            window: Vec::new(),
            window_start: 0,
            at_end: false,
        };
        let mut buf = Vec::new();
        for (offset, want) in [
            (0, 100),
            (50, 70_000),
            (50, 10),
            (150_000, 100_000),
            (199_990, 5),
        ] {
            buf.clear();
            stream.read_at(offset, want, &mut buf).unwrap();
            let end = (offset as usize + want).min(text.len());
            assert_eq!(buf, &text[offset as usize..end], "{offset} {want}");
            assert!(stream.window.len() <= want.max(64 * 1024) + 64 * 1024);
        }
        buf.clear();
        stream.read_at(300_000, 10, &mut buf).unwrap();
        assert!(buf.is_empty(), "past the end");
        assert!(stream.read_at(10, 10, &mut buf).is_err(), "forward only");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn cri(tag: &str, message: &str) -> String {
        format!("2024-06-28T06:40:16.000000001Z stdout {tag} {message}\n")
    }

    #[test]
    fn reads_whole_lines_within_the_budget_and_resumes_before_pending_chunks() {
        let dir = std::env::temp_dir().join(format!(
            "meshtap-tailed-{}/shop_cart-1_uid/istio-proxy",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.log");
        let first = cri("F", "first");
        let partial = cri("P", "half ");
        std::fs::write(&path, format!("{first}{partial}{}", "incomplete")).unwrap();
        let mut file = TailedFile::open(&path, 0, 1024, LineFormat::Unparsed).unwrap();
        assert_eq!(
            (file.namespace.as_str(), file.pod.as_str()),
            ("shop", "cart-1")
        );
        let mut lines = Vec::new();
        // A budget smaller than the first line: nothing is split, nothing consumed.
        let stats = file.read_lines(10, &mut |e| lines.push(e.line)).unwrap();
        assert!(stats.budget_spent && stats.bytes == 0 && lines.is_empty());
        let stats = file
            .read_lines(1 << 20, &mut |e| lines.push(e.line))
            .unwrap();
        assert_eq!(lines, ["first"]);
        assert_eq!(stats.bytes, (first.len() + partial.len()) as u64);
        assert!(!stats.budget_spent);
        // The P chunk is pending: a restart must read it again.
        assert_eq!(file.resume_offset(), first.len() as u64);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"\n").unwrap();
        std::io::Write::write_all(&mut f, cri("F", "done").as_bytes()).unwrap();
        file.read_lines(1 << 20, &mut |e| lines.push(e.line))
            .unwrap();
        assert_eq!(lines, ["first", "half done"]);
        assert_eq!(
            file.resume_offset(),
            std::fs::metadata(&path).unwrap().len()
        );
        std::fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
    }
}
