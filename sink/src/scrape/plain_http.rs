//! Plain-HTTP scrapes: a `GET` on a kept-alive connection, the response read in large reads
//! into a buffer that exists only while the scrape does.
//!
//! Why its own client: on the 200-target scrape bench a new connection per scrape (connect,
//! accept, close and the general client's connection task for every body) and reads of at most
//! a few tens of KiB (a read, a task hand-off and a wake-up each) were a fifth to a third of the
//! sink's CPU per sample; but the general client's pooled connection keeps the read buffer it
//! last grew (up to ~400 KiB) while it waits for the next scrape, which for hundreds of targets
//! is more memory than all their series. Here an idle connection is only a socket: the scrape
//! reads into its own [`READ_SIZE`] buffer, in the scrape's task, and hands the body on from
//! it.
//!
//! A request that fails on a reused connection before any of the response arrived (the target
//! closed it as the scrape began) is sent once more on a new connection: a `GET` is idempotent
//! and nothing of it reached the body sink.
//!
//! Owns the connections of one job's plain-HTTP targets, the request, the response head and the
//! undoing of gzip; it must not parse the body. Redirects, proxies, credentials in the URL and
//! TLS are the general client's (`super::fetch`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body_framing::BodyFraming;
use super::fetch::{BodySink, FetchError};

/// The most one read of a scrape takes (and the size of its buffer). Measured side by side on
/// 1.9 MB bodies at 200 targets: 64 KiB reads cost about 12 % more CPU per sample (four times
/// the reads), 1 MiB 3.5 % and 2 MiB 7 % more (and 10 % more peak RSS), likely because 256 KiB
/// still fits a core's L2 (1 MiB there) when the parse reads what the kernel's copy wrote.
pub const READ_SIZE: usize = 256 * 1024;

/// How long an idle connection is kept for the target's next scrape.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Idle connections kept per host and port.
const IDLE_PER_AUTHORITY: usize = 2;

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One job's plain-HTTP client: its idle connections by `host:port`.
#[derive(Clone, Debug)]
pub struct PlainHttpClient {
    idle: Arc<Mutex<IdleConnections>>,
    user_agent: Arc<str>,
}

#[derive(Debug, Default)]
struct IdleConnections {
    by_authority: HashMap<String, Vec<(TcpStream, Instant)>>,
    pruned: Option<Instant>,
}

/// What a plain-HTTP scrape came to.
pub enum PlainOutcome {
    /// The body went to the sink.
    Done,
    /// The general client fetches it: the target redirected.
    General,
}

/// A response head: what the body needs.
struct Head {
    status: u16,
    gzip: bool,
    content_type: Option<String>,
    framing: BodyFraming,
    keep_alive: bool,
}

impl PlainHttpClient {
    pub fn new(user_agent: &str) -> PlainHttpClient {
        PlainHttpClient {
            idle: Arc::default(),
            user_agent: user_agent.into(),
        }
    }

    /// `GET target` with `headers` (name, value), the body to `body` up to `limit` bytes
    /// (decompressed).
    pub async fn get(
        &self,
        target: &PlainUrl,
        headers: &[(&'static str, String)],
        limit: usize,
        body: &mut impl BodySink,
    ) -> Result<PlainOutcome, FetchError> {
        let request = self.request(target, headers)?;
        let mut buffer = Vec::with_capacity(READ_SIZE);
        let (mut stream, head, body_start) = match self.take_idle(&target.authority) {
            Some(mut stream) => match exchange_head(&mut stream, &request, &mut buffer).await {
                Ok((head, body_start)) => (stream, head, body_start),
                Err(_) if buffer.is_empty() => {
                    self.on_new_connection(target, &request, &mut buffer)
                        .await?
                }
                Err(error) => return Err(error),
            },
            None => {
                self.on_new_connection(target, &request, &mut buffer)
                    .await?
            }
        };
        if (300..400).contains(&head.status) {
            return Ok(PlainOutcome::General);
        }
        if !(200..300).contains(&head.status) {
            return Err(FetchError::Status(head.status));
        }
        let keep_alive = head.keep_alive;
        read_body(&mut stream, head, (buffer, body_start), limit, body).await?;
        if keep_alive {
            self.keep(target.authority.clone(), stream);
        }
        Ok(PlainOutcome::Done)
    }

    async fn on_new_connection(
        &self,
        target: &PlainUrl,
        request: &[u8],
        buffer: &mut Vec<u8>,
    ) -> Result<(TcpStream, Head, usize), FetchError> {
        buffer.clear();
        let mut stream = TcpStream::connect(target.authority.as_str())
            .await
            .map_err(|e| FetchError::Request(format!("connecting to {}: {e}", target.authority)))?;
        stream.set_nodelay(true).ok();
        let (head, body_start) = exchange_head(&mut stream, request, buffer).await?;
        Ok((stream, head, body_start))
    }

    /// The request's bytes; a header value with a line break (from a credentials file) is
    /// refused rather than sent as two lines.
    fn request(
        &self,
        target: &PlainUrl,
        headers: &[(&'static str, String)],
    ) -> Result<Vec<u8>, FetchError> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nhost: {}\r\nuser-agent: {}\r\naccept-encoding: gzip\r\n",
            target.path, target.authority, self.user_agent
        );
        for (name, value) in headers {
            if value.contains(['\r', '\n']) {
                return Err(FetchError::Request(format!(
                    "the {name} header's value holds a line break"
                )));
            }
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        Ok(request.into_bytes())
    }

    fn take_idle(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle.lock().expect("idle connections");
        let kept = idle.by_authority.get_mut(authority)?;
        while let Some((stream, since)) = kept.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(stream);
            }
        }
        None
    }

    /// Keeps `stream` for the next scrape of `authority`; drops connections idle too long (a
    /// removed target's) at most once per [`IDLE_TIMEOUT`].
    fn keep(&self, authority: String, stream: TcpStream) {
        let mut idle = self.idle.lock().expect("idle connections");
        let now = Instant::now();
        if idle.pruned.is_none_or(|at| now - at >= IDLE_TIMEOUT) {
            idle.pruned = Some(now);
            idle.by_authority.retain(|_, kept| {
                kept.retain(|(_, since)| now - *since < IDLE_TIMEOUT);
                !kept.is_empty()
            });
        }
        let kept = idle.by_authority.entry(authority).or_default();
        if kept.len() < IDLE_PER_AUTHORITY {
            kept.push((stream, now));
        }
    }
}

/// A URL this client fetches itself: `http://`, no credentials. Parsed once per target (a
/// scrape loop keeps it), not per scrape.
#[derive(Debug)]
pub struct PlainUrl {
    /// `host:port` (the port given or 80), as connected to and sent in `Host`.
    authority: String,
    /// Path and query, as the URL parser normalised them (percent-encoded).
    path: String,
}

impl PlainUrl {
    /// The URL, if it is one this client fetches (else the general client does).
    pub fn parse(url: &str) -> Option<PlainUrl> {
        let parsed = url::Url::parse(url).ok()?;
        if parsed.scheme() != "http" || !parsed.username().is_empty() || parsed.password().is_some()
        {
            return None;
        }
        let host = parsed.host_str()?;
        let port = parsed.port_or_known_default()?;
        Some(PlainUrl {
            authority: format!("{host}:{port}"),
            path: parsed[url::Position::BeforePath..url::Position::AfterQuery].to_owned(),
        })
    }
}

/// Sends the request and reads up to the end of the response head (informational responses
/// skipped); what was read after the head stays in `buffer`, from the returned offset on (the
/// body's first bytes are not moved to the front: up to a whole read of them).
async fn exchange_head(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Result<(Head, usize), FetchError> {
    let io = |e: std::io::Error| FetchError::Request(format!("request: {e}"));
    stream.write_all(request).await.map_err(io)?;
    let mut start = 0;
    loop {
        if stream.read_buf(buffer).await.map_err(io)? == 0 {
            return Err(FetchError::Request(
                "connection closed before the response".to_owned(),
            ));
        }
        while let Some((head, used)) = parse_head(&buffer[start..])? {
            start += used;
            if head.status >= 200 {
                return Ok((head, start));
            }
        }
        buffer.drain(..start);
        start = 0;
        if buffer.len() > MAX_HEAD {
            return Err(FetchError::Request(format!(
                "response head longer than {MAX_HEAD} bytes"
            )));
        }
    }
}

/// The head at the start of `buffer` and its length, if complete.
fn parse_head(buffer: &[u8]) -> Result<Option<(Head, usize)>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(buffer) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(FetchError::Request(format!("bad response head: {e}"))),
    };
    let status = response.code.unwrap_or_default();
    let mut head = Head {
        status,
        gzip: false,
        content_type: None,
        framing: BodyFraming::UntilClose,
        keep_alive: response.version == Some(1),
    };
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or_default().trim();
        match header.name.to_ascii_lowercase().as_str() {
            "content-type" => head.content_type = Some(value.to_owned()),
            "content-encoding" => match value.to_ascii_lowercase().as_str() {
                "" | "identity" => {}
                "gzip" | "x-gzip" => head.gzip = true,
                other => {
                    return Err(FetchError::Request(format!(
                        "unsupported content-encoding {other:?}"
                    )))
                }
            },
            "content-length" if !matches!(head.framing, BodyFraming::Chunked(_)) => {
                let length = value
                    .parse()
                    .map_err(|_| FetchError::Request(format!("bad content-length {value:?}")))?;
                head.framing = BodyFraming::Length(length);
            }
            "transfer-encoding" if value.to_ascii_lowercase().ends_with("chunked") => {
                head.framing = BodyFraming::chunked();
            }
            "connection" if value.eq_ignore_ascii_case("close") => head.keep_alive = false,
            _ => {}
        }
    }
    if matches!(head.framing, BodyFraming::UntilClose) {
        head.keep_alive = false;
    }
    Ok(Some((head, used)))
}

/// Reads the body to its end per its framing, through a gzip decoder when compressed, into
/// `body` behind the size limit.
async fn read_body(
    stream: &mut TcpStream,
    mut head: Head,
    (mut buffer, body_start): (Vec<u8>, usize),
    limit: usize,
    body: &mut impl BodySink,
) -> Result<(), FetchError> {
    body.content_type(head.content_type.as_deref());
    let out = Limited {
        body,
        len: 0,
        limit,
    };
    let mut out = if head.gzip {
        Decoding::Gzip(Box::new(flate2::write::GzDecoder::new(out)))
    } else {
        Decoding::Identity(out)
    };
    // `buffer` holds what was read after the head (from `body_start`), then each read.
    let mut written = Ok(());
    let mut start = body_start;
    loop {
        head.framing
            .feed(&buffer[start..], &mut |bytes| {
                if written.is_ok() {
                    written = out.write_all(bytes);
                }
            })
            .map_err(|e| FetchError::Request(format!("response body: {e}")))?;
        written.as_ref().map_err(|e| body_error(e, limit))?;
        if head.framing.is_complete() {
            break;
        }
        buffer.clear();
        start = 0;
        let read = stream
            .read_buf(&mut buffer)
            .await
            .map_err(|e| FetchError::Request(format!("reading the body: {e}")))?;
        if read == 0 {
            if matches!(head.framing, BodyFraming::UntilClose) {
                break;
            }
            return Err(FetchError::Request("body cut short".to_owned()));
        }
    }
    out.finish().map_err(|e| body_error(&e, limit))
}

fn body_error(error: &std::io::Error, limit: usize) -> FetchError {
    if error.get_ref().is_some_and(|e| e.is::<TooLarge>()) {
        FetchError::TooLarge(limit)
    } else {
        FetchError::Request(format!("gzip body: {error}"))
    }
}

/// The body as it came, or through a gzip decoder.
enum Decoding<W: Write> {
    Identity(W),
    Gzip(Box<flate2::write::GzDecoder<W>>),
}

impl<W: Write> Decoding<W> {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Decoding::Identity(out) => out.write_all(data),
            Decoding::Gzip(decoder) => decoder.write_all(data),
        }
    }

    /// The gzip stream must have ended, its checksum right.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Decoding::Identity(_) => Ok(()),
            Decoding::Gzip(decoder) => decoder.finish().map(drop),
        }
    }
}

/// The body sink behind a size limit, as a writer (the gzip decoder writes into it).
struct Limited<'a, S> {
    body: &'a mut S,
    len: usize,
    limit: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("body over the size limit")]
struct TooLarge;

impl<S: BodySink> Write for Limited<'_, S> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.len += bytes.len();
        if self.len > self.limit {
            return Err(std::io::Error::other(TooLarge));
        }
        self.body.chunk(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "plain_http_tests.rs"]
mod tests;
