//! One CRI log line, `<RFC3339Nano> <stdout|stderr> <P|F>[:more tags] <message>`, as written by
//! containerd (`Z` timestamps) and CRI-O (numeric offsets). Owns parsing of a single line; joining
//! `P` chunks belongs to the joiner.

use thiserror::Error;

use crate::time::{parse_rfc3339_nanos, TimestampError};

/// Which container output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CriStream {
    Stdout,
    Stderr,
}

impl CriStream {
    /// The stream's name as it appears in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            CriStream::Stdout => "stdout",
            CriStream::Stderr => "stderr",
        }
    }
}

/// One parsed CRI line, borrowing its message from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// Nanoseconds since the Unix epoch, UTC.
    pub timestamp_ns: i64,
    pub stream: CriStream,
    /// `true` for a `P` chunk: the message continues in the next chunk of the same stream.
    pub partial: bool,
    /// The payload, without the trailing newline.
    pub message: &'a [u8],
}

/// Why a line is not a CRI log line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CriError {
    #[error("CRI line has no `<timestamp> <stream> <tag>` prefix")]
    MissingFields,
    #[error("CRI timestamp: {0}")]
    Timestamp(#[from] TimestampError),
    #[error("CRI stream is neither stdout nor stderr")]
    UnknownStream,
    #[error("CRI tag is neither P nor F")]
    UnknownTag,
}

/// Parses one line of a CRI log file. A trailing `\n` is ignored; the message is everything after
/// the single space that follows the tag (empty when the line ends at the tag).
pub fn parse_cri_line(line: &[u8]) -> Result<CriLine<'_>, CriError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (timestamp, rest) = split_at_space(line).ok_or(CriError::MissingFields)?;
    let (stream, rest) = split_at_space(rest).ok_or(CriError::MissingFields)?;
    let (tags, message) = split_at_space(rest).unwrap_or((rest, &[]));

    let stream = match stream {
        b"stdout" => CriStream::Stdout,
        b"stderr" => CriStream::Stderr,
        _ => return Err(CriError::UnknownStream),
    };
    // Tags are `:`-separated; the first one is the partial/full flag.
    let flag = tags.split(|&byte| byte == b':').next().unwrap_or(tags);
    let partial = match flag {
        b"P" => true,
        b"F" => false,
        _ => return Err(CriError::UnknownTag),
    };
    Ok(CriLine {
        timestamp_ns: parse_rfc3339_nanos(timestamp)?,
        stream,
        partial,
        message,
    })
}

fn split_at_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let index = bytes.iter().position(|&byte| byte == b' ')?;
    Some((&bytes[..index], &bytes[index + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_full_line() {
        let line = parse_cri_line(b"2022-07-22T12:24:16.90297571Z stdout F [2022-07-22T12:24:16.867Z] \"GET / HTTP/1.1\"\n").unwrap();
        assert_eq!(line.timestamp_ns, 1_658_492_656_902_975_710);
        assert_eq!(line.stream, CriStream::Stdout);
        assert!(!line.partial);
        assert_eq!(
            line.message,
            b"[2022-07-22T12:24:16.867Z] \"GET / HTTP/1.1\""
        );
    }

    #[test]
    fn parses_crio_partial_stderr_line_with_offset() {
        let line = parse_cri_line(b"2024-06-28T08:40:16.285918+02:00 stderr P chunk one").unwrap();
        assert_eq!(line.stream, CriStream::Stderr);
        assert!(line.partial);
        assert_eq!(line.message, b"chunk one");
        assert_eq!(
            line.timestamp_ns,
            parse_rfc3339_nanos(b"2024-06-28T06:40:16.285918Z").unwrap()
        );
    }

    #[test]
    fn keeps_message_spaces_and_allows_empty_messages() {
        let line = parse_cri_line(b"2022-07-22T12:24:16Z stdout F  two  spaces ").unwrap();
        assert_eq!(line.message, b" two  spaces ");
        assert_eq!(
            parse_cri_line(b"2022-07-22T12:24:16Z stdout F ")
                .unwrap()
                .message,
            b""
        );
        assert_eq!(
            parse_cri_line(b"2022-07-22T12:24:16Z stdout F")
                .unwrap()
                .message,
            b""
        );
    }

    #[test]
    fn accepts_extra_tags_after_the_flag() {
        let line = parse_cri_line(b"2022-07-22T12:24:16Z stdout P:x message").unwrap();
        assert!(line.partial);
        assert_eq!(line.message, b"message");
    }

    #[test]
    fn rejects_lines_that_are_not_cri() {
        assert!(
            parse_cri_line(b"2024-06-28T06:40:16.285918Z\tinfo\tEnvoy proxy is ready").is_err()
        );
        assert_eq!(
            parse_cri_line(b"2024-06-28T06:40:16.285918Z\tinfo\tready"),
            Err(CriError::MissingFields)
        );
        assert_eq!(
            parse_cri_line(b"2022-07-22T12:24:16Z stdout"),
            Err(CriError::MissingFields)
        );
        assert_eq!(
            parse_cri_line(b"2022-07-22T12:24:16Z stdin F x"),
            Err(CriError::UnknownStream)
        );
        assert_eq!(
            parse_cri_line(b"2022-07-22T12:24:16Z stdout X x"),
            Err(CriError::UnknownTag)
        );
        assert!(matches!(
            parse_cri_line(b"yesterday stdout F x"),
            Err(CriError::Timestamp(_))
        ));
    }
}
