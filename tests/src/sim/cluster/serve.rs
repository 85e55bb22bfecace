//! The loopback HTTP/1.1 listeners of the simulated cluster: each answers `GET <its path>`
//! with a body rendered at request time under its endpoint's content type (Prometheus text
//! 0.0.4 for istio-agent and istiod, ztunnel's `text/plain` for its OpenMetrics body), 404
//! otherwise, and closes the connection. One thread polls every listener; it stops when the server is dropped.
//!
//! Serving only; the bodies come from the caller's `render`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Prometheus' text format, as istio-agent and istiod serve it.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// What ztunnel says of its OpenMetrics body unless OpenMetrics is asked for (istio/ztunnel
/// `src/metrics/server.rs` `content_type()`).
pub const ZTUNNEL_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// One listener's path and the content type of its body.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub path: &'static str,
    pub content_type: &'static str,
}
/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// Running listeners; stops when dropped.
pub struct StatsServer {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatsServer {
    /// Serves `listeners[i]` (already bound) at `endpoints[i]` with `render(i)`.
    pub fn start(
        listeners: Vec<TcpListener>,
        endpoints: Vec<Endpoint>,
        render: impl Fn(usize) -> String + Send + 'static,
    ) -> std::io::Result<StatsServer> {
        let mut addrs = Vec::new();
        for listener in &listeners {
            listener.set_nonblocking(true)?;
            addrs.push(listener.local_addr()?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let mut idle = true;
                    for (i, listener) in listeners.iter().enumerate() {
                        if let Ok((stream, _)) = listener.accept() {
                            idle = false;
                            if let Err(error) = answer(stream, endpoints[i], || render(i)) {
                                tracing::debug!(%error, "cluster endpoint: bad exchange");
                            }
                        }
                    }
                    if idle {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        };
        Ok(StatsServer {
            addrs,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address of each listener, in order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

impl Drop for StatsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    endpoint: Endpoint,
    render: impl FnOnce() -> String,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let requested = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "GET" && requested == endpoint.path {
        ("200 OK", endpoint.content_type, render())
    } else {
        (
            "404 Not Found",
            "text/plain",
            "404 page not found\n".to_string(),
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
