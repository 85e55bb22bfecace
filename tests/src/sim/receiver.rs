//! A loopback report receiver standing in for the sink: accepts `POST /v1/reports` over
//! HTTP/1.1 on 127.0.0.1, decodes each body with `meshtap_report::decode`, keeps the reports
//! and answers like the sink (204, 400 bad body, 401 bad token).
//!
//! It stores and optionally prints reports; it does not aggregate or export anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use meshtap_report::Report;

/// Largest decoded report accepted (as the sink's default limit).
const MAX_DECODED: usize = 16 << 20;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct ReceivedPost {
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The decoded report, or why decoding failed.
    pub report: Result<Report, String>,
}

/// A running receiver; stops when dropped.
pub struct ReportReceiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<ReceivedPost>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReportReceiver {
    /// Listens on `addr` (use port 0 for any free port). With `token`, requests must carry
    /// `authorization: Bearer <token>`. With `print`, every decoded report is written to
    /// stdout as one JSON line.
    pub fn start(
        addr: SocketAddr,
        token: Option<String>,
        print: bool,
    ) -> std::io::Result<ReportReceiver> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (posts, stop) = (posts.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Err(error) = serve(stream, token.as_deref(), print, &posts) {
                                tracing::warn!(%error, "report receiver: bad exchange");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(error) => tracing::warn!(%error, "report receiver: accept failed"),
                    }
                }
            })
        };
        Ok(ReportReceiver {
            addr,
            posts,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn posts(&self) -> Vec<ReceivedPost> {
        self.posts.lock().unwrap().clone()
    }

    /// Every report decoded so far, in arrival order.
    pub fn reports(&self) -> Vec<Report> {
        self.posts()
            .into_iter()
            .filter_map(|p| p.report.ok())
            .collect()
    }
}

impl Drop for ReportReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    token: Option<&str>,
    print: bool,
    posts: &Mutex<Vec<ReceivedPost>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(MAX_DECODED)];
    reader.read_exact(&mut body)?;
    let authorized = token.is_none_or(|t| header("authorization") == Some(&format!("Bearer {t}")));
    let (status, reason) = if method != "POST" || path != meshtap_report::REPORT_PATH {
        (404, "not found".to_string())
    } else if !authorized {
        (401, "bad ingest token".to_string())
    } else {
        match meshtap_report::decode(&body, MAX_DECODED) {
            Ok(report) => {
                if print {
                    println!("{}", super::report_json::report_json(&report));
                }
                posts.lock().unwrap().push(ReceivedPost {
                    path,
                    headers: headers.clone(),
                    report: Ok(report),
                });
                (204, String::new())
            }
            Err(error) => {
                posts.lock().unwrap().push(ReceivedPost {
                    path,
                    headers: headers.clone(),
                    report: Err(error.to_string()),
                });
                (400, error.to_string())
            }
        }
    };
    let response = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reason}",
        if status == 204 { "No Content" } else { "Error" },
        reason.len()
    );
    (&stream).write_all(response.as_bytes())?;
    Ok(())
}
