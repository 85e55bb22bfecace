//! Where an HTTP/1.1 response body ends on its connection: after `Content-Length` bytes, at the
//! last chunk of a `Transfer-Encoding: chunked` body (RFC 9112 §7.1: sizes in hex, extensions
//! after `;` ignored, trailers skipped), or when the peer closes. Fed the bytes as they were read,
//! split anywhere; hands on the body's bytes and says when it is complete.
//!
//! Owns only the framing; it must not do I/O nor decode content (gzip is the caller's).

/// Why a body's framing is unusable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("bad chunk size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("chunk size line or trailer longer than {0} bytes")]
    LineTooLong(usize),
}

/// The longest chunk-size line or trailer line accepted.
const MAX_LINE: usize = 4096;

/// How the body of one response is delimited.
#[derive(Debug)]
pub enum BodyFraming {
    /// `Content-Length`: the bytes still to come.
    Length(u64),
    /// Chunked, at some point of its grammar.
    Chunked(Chunked),
    /// Until the connection closes (no length given; the connection is not reused).
    UntilClose,
}

#[derive(Debug)]
pub enum Chunked {
    /// Reading a chunk-size line (kept so far: its bytes).
    Size(Vec<u8>),
    /// In a chunk's data: bytes still to come.
    Data(u64),
    /// After a chunk's data: how many bytes of its CRLF were seen.
    DataEnd(u8),
    /// After the last chunk: a trailer line (kept so far: its length).
    Trailer(usize),
    Done,
}

impl BodyFraming {
    pub fn chunked() -> BodyFraming {
        BodyFraming::Chunked(Chunked::Size(Vec::new()))
    }

    /// Whether the body has ended (a body until close ends only when the caller sees the close).
    pub fn is_complete(&self) -> bool {
        matches!(
            self,
            BodyFraming::Length(0) | BodyFraming::Chunked(Chunked::Done)
        )
    }

    /// Takes `input` (the next bytes read), hands the body's bytes in it to `body`, and returns
    /// how many bytes of `input` belonged to this response (the rest is not ours).
    pub fn feed(
        &mut self,
        input: &[u8],
        body: &mut impl FnMut(&[u8]),
    ) -> Result<usize, FramingError> {
        match self {
            BodyFraming::Length(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                if n > 0 {
                    body(&input[..n]);
                }
                *left -= n as u64;
                Ok(n)
            }
            BodyFraming::UntilClose => {
                if !input.is_empty() {
                    body(input);
                }
                Ok(input.len())
            }
            BodyFraming::Chunked(state) => {
                let mut at = 0;
                while at < input.len() && !matches!(state, Chunked::Done) {
                    at += state.step(&input[at..], body)?;
                }
                Ok(at)
            }
        }
    }
}

impl Chunked {
    /// Consumes a prefix of `input` (at least one byte) in the current state.
    fn step(&mut self, input: &[u8], body: &mut impl FnMut(&[u8])) -> Result<usize, FramingError> {
        match self {
            Chunked::Size(line) => {
                let Some(end) = input.iter().position(|&b| b == b'\n') else {
                    line.extend_from_slice(input);
                    return check_line(line.len()).map(|()| input.len());
                };
                line.extend_from_slice(&input[..end]);
                check_line(line.len())?;
                let size = chunk_size(line)?;
                *self = if size == 0 {
                    Chunked::Trailer(0)
                } else {
                    Chunked::Data(size)
                };
                Ok(end + 1)
            }
            Chunked::Data(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                body(&input[..n]);
                *left -= n as u64;
                if *left == 0 {
                    *self = Chunked::DataEnd(0);
                }
                Ok(n)
            }
            Chunked::DataEnd(seen) => {
                let expected = b"\r\n"[usize::from(*seen)];
                if input[0] != expected {
                    return Err(FramingError::ChunkEnd);
                }
                *seen += 1;
                if *seen == 2 {
                    *self = Chunked::Size(Vec::new());
                }
                Ok(1)
            }
            Chunked::Trailer(len) => {
                let Some(end) = input.iter().position(|&b| b == b'\n') else {
                    *len += input.len();
                    return check_line(*len).map(|()| input.len());
                };
                let line = *len + end;
                check_line(line)?;
                // The empty line (`\r\n`, or a bare `\n`) ends the trailers and the body; a
                // trailer field is never a single byte.
                *self = if line <= 1 {
                    Chunked::Done
                } else {
                    Chunked::Trailer(0)
                };
                Ok(end + 1)
            }
            Chunked::Done => Ok(0),
        }
    }
}

fn check_line(len: usize) -> Result<(), FramingError> {
    if len > MAX_LINE {
        return Err(FramingError::LineTooLong(MAX_LINE));
    }
    Ok(())
}

/// The size of a chunk-size line (`1a3f;ext=1\r`): hex digits, then optional extensions.
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let line = line.strip_suffix(b"\r").ok_or(FramingError::ChunkSize)?;
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(FramingError::ChunkSize);
    }
    let text = std::str::from_utf8(digits).map_err(|_| FramingError::ChunkSize)?;
    u64::from_str_radix(text, 16).map_err(|_| FramingError::ChunkSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` cut at `cut` (and the rest), returns the body, the bytes used and whether
    /// the framing completed.
    fn feed_split(
        mut framing: BodyFraming,
        wire: &[u8],
        cut: usize,
    ) -> Result<(Vec<u8>, usize, bool), FramingError> {
        let mut body = Vec::new();
        let mut used = 0;
        for part in [&wire[..cut], &wire[cut..]] {
            if framing.is_complete() {
                break;
            }
            used += framing.feed(part, &mut |b| body.extend_from_slice(b))?;
        }
        Ok((body, used, framing.is_complete()))
    }

    const CHUNKED: &[u8] =
        b"7\r\nenvoy_s\r\n11;name=value\r\nerver_live 1\nup 1\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";

    #[test]
    fn a_chunked_body_is_joined_wherever_the_reads_cut_it() {
        for cut in 0..=CHUNKED.len() {
            let (body, used, done) = feed_split(BodyFraming::chunked(), CHUNKED, cut).unwrap();
            assert_eq!(body, b"envoy_server_live 1\nup 1", "cut at {cut}");
            assert_eq!(used, CHUNKED.len() - 4, "NEXT belongs to the next response");
            assert!(done);
        }
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let (body, used, done) = feed_split(BodyFraming::Length(5), b"hello, next", 3).unwrap();
        assert_eq!((body.as_slice(), used, done), (&b"hello"[..], 5, true));
        let (_, _, done) = feed_split(BodyFraming::Length(50), b"short", 2).unwrap();
        assert!(!done, "a short body is not complete");
    }

    #[test]
    fn a_chunked_body_without_trailers_ends_at_the_empty_line() {
        let (body, _, done) =
            feed_split(BodyFraming::chunked(), b"2\r\nok\r\n0\r\n\r\n", 9).unwrap();
        assert_eq!(body, b"ok");
        assert!(done);
    }

    #[test]
    fn bad_chunk_framing_is_an_error() {
        for wire in [
            &b"zz\r\nab\r\n"[..],
            b"2\r\nabXY",
            b"\r\n",
            b"1234567890abcdef0\r\n",
        ] {
            assert!(
                feed_split(BodyFraming::chunked(), wire, 1).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let long = vec![b'1'; MAX_LINE + 2];
        assert_eq!(
            feed_split(BodyFraming::chunked(), &long, 7).unwrap_err(),
            FramingError::LineTooLong(MAX_LINE)
        );
    }
}
