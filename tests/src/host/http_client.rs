//! A minimal blocking HTTP/1.1 client for `proxy_http_call`: turns the filter's pseudo-headers
//! into a request line, sends the body with `content-length`, and reads status, headers and body
//! (content-length, chunked or until close).
//!
//! It only speaks plain HTTP/1.1 to a socket address; cluster lookup, tokens and delivery to the
//! VM belong to the call dispatcher.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A completed upstream response: headers include `:status`, names lower-cased.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Why a call produced no response (Envoy then reports 0 headers).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("exchanging with {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("malformed response from {addr}: {reason}")]
    Malformed { addr: SocketAddr, reason: String },
}

/// Sends one request; `timeout` of `None` means no timeout (Envoy's timeout 0).
pub fn send(
    addr: SocketAddr,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<HttpResponse, CallError> {
    let stream = match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t),
        None => TcpStream::connect(addr),
    }
    .map_err(|source| CallError::Connect { addr, source })?;
    let io = |source| CallError::Io { addr, source };
    stream.set_read_timeout(timeout).map_err(io)?;
    stream.set_write_timeout(timeout).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let request = request_bytes(headers, body);
    (&stream).write_all(&request).map_err(io)?;
    let mut reader = BufReader::new(&stream);
    read_response(&mut reader).map_err(|e| match e {
        ReadError::Io(source) => CallError::Io { addr, source },
        ReadError::Malformed(reason) => CallError::Malformed { addr, reason },
    })
}

fn pseudo<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
        .unwrap_or_default()
}

fn request_bytes(headers: &[(String, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(pseudo(headers, ":method"));
    out.push(b' ');
    out.extend_from_slice(pseudo(headers, ":path"));
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(pseudo(headers, ":authority"));
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name.starts_with(':')
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("connection")
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

enum ReadError {
    Io(std::io::Error),
    Malformed(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn read_line(reader: &mut impl BufRead) -> Result<String, ReadError> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(ReadError::Malformed(
            "connection closed mid-response".into(),
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_response(reader: &mut impl BufRead) -> Result<HttpResponse, ReadError> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ReadError::Malformed(format!("bad status line {status_line:?}")))?
        .to_string();
    let mut headers = vec![(":status".to_string(), status.into_bytes())];
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ReadError::Malformed(format!("bad header line {line:?}")))?;
        headers.push((
            name.trim().to_ascii_lowercase(),
            value.trim().as_bytes().to_vec(),
        ));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Malformed(format!("bad content-length {len:?}")))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    } else {
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body
    };
    Ok(HttpResponse { headers, body })
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| ReadError::Malformed(format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, then the final empty line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn request_line_comes_from_pseudo_headers() {
        let headers = vec![
            (":method".to_string(), b"POST".to_vec()),
            (":path".to_string(), b"/v1/reports".to_vec()),
            (":authority".to_string(), b"sink:9091".to_vec()),
            (
                "content-type".to_string(),
                b"application/x-protobuf".to_vec(),
            ),
        ];
        let text = String::from_utf8(request_bytes(&headers, b"abc")).unwrap();
        assert!(text.starts_with("POST /v1/reports HTTP/1.1\r\nhost: sink:9091\r\n"));
        assert!(text.contains("content-type: application/x-protobuf\r\n"));
        assert!(text.ends_with("content-length: 3\r\nconnection: close\r\n\r\nabc"));
    }

    #[test]
    fn reads_chunked_and_sized_responses() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = read_response(&mut Cursor::new(&raw[..])).ok().unwrap();
        assert_eq!(response.body, b"abcde");
        assert_eq!(
            response.headers[0],
            (":status".to_string(), b"200".to_vec())
        );
        let raw = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        let response = read_response(&mut Cursor::new(&raw[..])).ok().unwrap();
        assert!(response.body.is_empty());
        assert!(read_response(&mut Cursor::new(&b"garbage\r\n\r\n"[..])).is_err());
    }
}
