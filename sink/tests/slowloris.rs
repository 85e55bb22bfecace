//! Hostile clients against the sink binary under a 256-descriptor limit: more slow connections
//! than the process has descriptors (silent ones, request heads sent a byte at a time, bodies
//! shorter than their `Content-Length`, kept-alive ones left idle after a request), reopened as
//! fast as the sink closes them. The sink
//! must close each within its timeout, refuse what is over its connection limit without running
//! out of descriptors, keep `/healthz`, `/readyz` and `/metrics` answering on `serve.ops_listen`
//! throughout, and take a real report once the attack ends.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sink_process::{ready_address, SinkProcess};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DESCRIPTORS: u64 = 256;
/// Half the descriptors: the automatic `serve.max_connections`.
const REPORT_LIMIT: u64 = DESCRIPTORS / 2;
/// Attackers of each kind; together well over the descriptor limit.
const ATTACKERS_PER_KIND: usize = 75;
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Scheduling slack of a loaded machine on top of a timeout.
const SLACK: Duration = Duration::from_secs(5);
/// An attacker's pace: one byte, or one reconnection, per this.
const PACE: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request head a byte at a time.
    SlowHead,
    /// Sends a whole head declaring 200 body bytes, then 10 of them.
    ShortBody,
    /// Sends a whole request, reads the answer, then sends nothing more.
    IdleAfterRequest,
}

const SLOW_HEAD: &[u8] =
    b"POST /v1/reports HTTP/1.1\r\nhost: sink\r\ncontent-type: application/x-protobuf\r\n\r\n";
const SHORT_BODY: &[u8] =
    b"POST /v1/reports HTTP/1.1\r\nhost: sink\r\ncontent-length: 200\r\n\r\n0123456789";
const WHOLE_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: sink\r\n\r\n";

/// What the attackers saw.
#[derive(Debug, Default)]
struct Tally {
    opened: u64,
    /// Connections the sink closed, and the longest any of them was held.
    closed_by_sink: u64,
    longest_held: Duration,
    /// Short bodies answered 408, and the shortest time until that answer.
    answered_408: u64,
    shortest_408: Option<Duration>,
    /// Still open when the attack stopped (closed by the attacker).
    dropped_at_end: u64,
}

/// Holds one connection until the sink closes it (returns how long, and whether it answered
/// 408) or the attack stops (`None`).
async fn hold(mut stream: TcpStream, kind: Attack, stop: &AtomicBool) -> Option<(Duration, bool)> {
    let opened = Instant::now();
    let mut unsent: &[u8] = match kind {
        Attack::Silent => b"",
        Attack::SlowHead => SLOW_HEAD,
        Attack::ShortBody | Attack::IdleAfterRequest => {
            let whole = match kind {
                Attack::ShortBody => SHORT_BODY,
                _ => WHOLE_REQUEST,
            };
            if stream.write_all(whole).await.is_err() {
                return Some((opened.elapsed(), false));
            }
            b""
        }
    };
    let (mut read, mut write) = stream.split();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(PACE);
    loop {
        tokio::select! {
            n = read.read(&mut buf) => match n {
                Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
                _ => return Some((opened.elapsed(), answer.starts_with(b"HTTP/1.1 408"))),
            },
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                if let Some((byte, rest)) = unsent.split_first() {
                    unsent = rest;
                    if write.write_all(&[*byte]).await.is_err() {
                        return Some((opened.elapsed(), false));
                    }
                }
            }
        }
    }
}

/// Opens `kind` connections one after another until `stop`.
async fn attacker(addr: SocketAddr, kind: Attack, stop: Arc<AtomicBool>, tally: Arc<Mutex<Tally>>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(stream) = TcpStream::connect(addr).await {
            tally.lock().unwrap().opened += 1;
            let outcome = hold(stream, kind, &stop).await;
            let mut tally = tally.lock().unwrap();
            match outcome {
                Some((held, answered_408)) => {
                    tally.closed_by_sink += 1;
                    tally.longest_held = tally.longest_held.max(held);
                    if answered_408 {
                        tally.answered_408 += 1;
                        tally.shortest_408 = Some(tally.shortest_408.unwrap_or(held).min(held));
                    }
                }
                None => tally.dropped_at_end += 1,
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

/// A self-metric from `/metrics` on the ops listener.
async fn metric(ops: SocketAddr, series: &str) -> f64 {
    self_metric(ops, series)
        .await
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

/// GETs `path` on a fresh connection; the status, or 0 when there is no answer within 2 s.
async fn status(client: &reqwest::Client, addr: SocketAddr, path: &str) -> u16 {
    match client.get(format!("http://{addr}{path}")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_the_ops_listener_keeps_answering() {
    let dir = std::env::temp_dir().join(format!("meshtap-sink-slowloris-{}", std::process::id()));
    let yaml = format!(
        "serve:\n  ops_listen: 127.0.0.1:0\n  header_read_timeout: {}ms\n  body_read_timeout: {}ms\n  idle_timeout: {}ms\n",
        HEADER_TIMEOUT.as_millis(),
        BODY_TIMEOUT.as_millis(),
        IDLE_TIMEOUT.as_millis()
    );
    let sink = SinkProcess::start_with(&dir, &yaml, |command| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: DESCRIPTORS,
                    rlim_max: DESCRIPTORS,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    })
    .await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", sink.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 256 ")),
        "{limits}"
    );
    let ops = ready_address(&sink.log(), "ops_listen").expect("ready line with ops_listen");
    let report_limit = "meshtap_sink_http_connections_limit{listener=\"listen\"}";
    assert_eq!(metric(ops, report_limit).await, REPORT_LIMIT as f64);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut attackers = Vec::new();
    for kind in [
        Attack::Silent,
        Attack::SlowHead,
        Attack::ShortBody,
        Attack::IdleAfterRequest,
    ] {
        for _ in 0..ATTACKERS_PER_KIND {
            attackers.push(tokio::spawn(attacker(
                sink.addr,
                kind,
                stop.clone(),
                tally.clone(),
            )));
        }
    }

    // While the attack lasts, every phase's timeout is hit and the report listener stays at
    // its limit; the ops listener answers throughout.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let refused = "meshtap_sink_http_connections_refused_total{listener=\"listen\"}";
    let timeouts = |phase: &str| {
        format!("meshtap_sink_http_timeouts_total{{listener=\"listen\",phase=\"{phase}\"}}")
    };
    let open = "meshtap_sink_http_connections_open{listener=\"listen\"}";
    let (mut ops_asked, mut ops_answered, mut most_open) = (0, 0, 0.0f64);
    let attack_started = Instant::now();
    loop {
        for path in ["/healthz", "/readyz", "/metrics"] {
            ops_asked += 1;
            if status(&client, ops, path).await == 200 {
                ops_answered += 1;
            }
        }
        most_open = most_open.max(metric(ops, open).await);
        let mut all_hit = metric(ops, refused).await > 0.0;
        for phase in ["header", "body", "idle"] {
            all_hit &= metric(ops, &timeouts(phase)).await > 0.0;
        }
        if all_hit && most_open == REPORT_LIMIT as f64 {
            break;
        }
        assert!(
            attack_started.elapsed() < Duration::from_secs(30),
            "the attack did not fill the listener and hit every timeout: {} open at most\n{}",
            most_open,
            get_text(ops, "/metrics").await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attack_lasted = attack_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }

    // The report listener takes a real report once the attackers are gone.
    let r = report(
        "default",
        "p-1",
        1,
        now_ms(),
        vec![requests_family(vec![(
            http_values("a.default.svc.cluster.local", "200", "destination"),
            1.0,
        )])],
    );
    let mut accepted = false;
    for _ in 0..50 {
        let answer = client
            .post(format!(
                "http://{}{}",
                sink.addr,
                meshtap_report::REPORT_PATH
            ))
            .header("content-type", meshtap_report::CONTENT_TYPE)
            .header("content-encoding", meshtap_report::CONTENT_ENCODING)
            .body(meshtap_report::encode(&r))
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == 204) {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        accepted,
        "no report accepted after the attack\n{}",
        sink.log()
    );
    assert_eq!(
        metric(ops, "meshtap_sink_reports_total{result=\"accepted\"}").await,
        1.0
    );
    let accept_errors = "meshtap_sink_http_accept_errors_total{listener=\"listen\"}";
    assert_eq!(metric(ops, accept_errors).await, 0.0, "descriptors ran out");

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    println!(
        "slowloris under {DESCRIPTORS} descriptors for {attack_lasted:?}: {} connections opened, \
         {} closed by the sink (longest held {:?}), {} answered 408 (after {:?} at the earliest), \
         {} dropped by the attackers at the end; refused over the limit: {}; timeouts \
         header/body/idle: {}/{}/{}; most open on the report listener: {most_open}; \
         ops listener answers: {ops_answered}/{ops_asked}",
        tally.opened,
        tally.closed_by_sink,
        tally.longest_held,
        tally.answered_408,
        tally.shortest_408,
        tally.dropped_at_end,
        metric(ops, refused).await,
        metric(ops, &timeouts("header")).await,
        metric(ops, &timeouts("body")).await,
        metric(ops, &timeouts("idle")).await,
    );
    assert_eq!(ops_answered, ops_asked, "the ops listener missed answers");
    assert!(tally.opened > DESCRIPTORS, "{tally:?}");
    assert!(
        tally.longest_held <= IDLE_TIMEOUT + SLACK,
        "a connection was held past every timeout: {tally:?}"
    );
    assert!(tally.answered_408 > 0, "{tally:?}");
    assert!(
        tally.shortest_408.unwrap() >= BODY_TIMEOUT,
        "408 before the body timeout: {tally:?}"
    );
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}
