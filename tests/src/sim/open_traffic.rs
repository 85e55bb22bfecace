//! Traffic of a running simulation that stays open while time passes: TCP connections and gRPC
//! streams. Each is opened on every proxy that observes it at once; its steps then fall due
//! spread over the call's duration (which may span report intervals) and are delivered to each
//! proxy when the simulation's clock reaches them.
//!
//! - A TCP connection: chunk pair k of n (client → server, server → client) at
//!   start + duration·(k+1)/(n+1), the client's close at the end; every side gets the same steps.
//! - A gRPC stream: at slot k of n (n = the body chunks of the longer direction) request chunk
//!   k, the response headers (at the first slot), response chunk k; trailers and the end of the
//!   stream (done, log) at the end. Each side follows its own exchange's headers and properties.
//!
//! Scheduling only; what each side observes comes from `mesh.rs`, `mesh_tcp.rs` and
//! `waypoint.rs`.

use std::collections::{BTreeMap, VecDeque};

use crate::host::{
    Direction, HttpExchange, HttpHandle, HttpStep, PeerType, Proxy, TcpConnectionSpec, TcpHandle,
};

use super::mesh_tcp::TcpData;

type Headers = Vec<(String, String)>;

/// One step of an open connection or stream, owned until it is delivered.
enum Step {
    TcpData(Direction, Vec<u8>, bool),
    /// The client closes: the proxy sees its downstream peer go away.
    TcpClose,
    RequestBody(Vec<u8>, bool),
    ResponseHeaders(Headers, bool),
    ResponseBody(Vec<u8>, bool),
    ResponseTrailers(Headers),
    /// The stream ends (done, log, delete).
    HttpClose,
}

enum Handle {
    Tcp(TcpHandle),
    Http(HttpHandle),
}

/// One proxy's part of an open connection or stream.
struct OpenSide {
    proxy: String,
    handle: Handle,
    /// Steps with the time (ns since epoch) each falls due, in order.
    steps: VecDeque<(u64, Step)>,
}

/// Every side still open, in the order they were opened.
#[derive(Default)]
pub struct OpenTraffic {
    open: Vec<OpenSide>,
}

const PROXY_INVARIANT: &str =
    "the simulation never replaces VMs, so its workers and connection handles stay valid";

/// When slot `k` of `n` of an item started at `start` and lasting `duration` falls due.
fn slot(start: u64, duration: u64, k: usize, n: usize) -> u64 {
    start + duration * (k as u64 + 1) / (n as u64 + 1)
}

impl OpenTraffic {
    /// Opens a TCP connection on each `(proxy, worker, spec)` now (`start`) and schedules its
    /// data and close over `duration` ns.
    pub fn open_tcp(
        &mut self,
        proxies: &mut BTreeMap<String, Proxy>,
        sides: Vec<(String, usize, TcpConnectionSpec)>,
        data: &TcpData,
        start: u64,
        duration: u64,
    ) {
        let pairs = data.sent.len().max(data.received.len());
        for (proxy_key, worker, spec) in sides {
            let proxy = proxies.get_mut(&proxy_key).expect("every side has a proxy");
            let (handle, _) = proxy.open_tcp(worker, &spec).expect(PROXY_INVARIANT);
            let mut steps = VecDeque::new();
            for k in 0..pairs {
                let due = slot(start, duration, k, pairs);
                for (direction, chunks) in [
                    (Direction::Downstream, &data.sent),
                    (Direction::Upstream, &data.received),
                ] {
                    if let Some(chunk) = chunks.get(k) {
                        let last = k + 1 == chunks.len();
                        steps.push_back((due, Step::TcpData(direction, chunk.clone(), last)));
                    }
                }
            }
            steps.push_back((start + duration, Step::TcpClose));
            self.open.push(OpenSide {
                proxy: proxy_key,
                handle: Handle::Tcp(handle),
                steps,
            });
        }
    }

    /// Opens a gRPC stream on `proxy`'s `worker` now (`start`, the request headers) and
    /// schedules the rest of `exchange` over `duration` ns.
    pub fn open_stream(
        &mut self,
        proxies: &mut BTreeMap<String, Proxy>,
        (proxy_key, worker): (String, usize),
        exchange: &HttpExchange,
        start: u64,
        duration: u64,
    ) {
        let proxy = proxies.get_mut(&proxy_key).expect("every side has a proxy");
        let request_ends = exchange.request_body.is_empty();
        let (handle, _) = proxy
            .open_http(worker, exchange, request_ends)
            .expect(PROXY_INVARIANT);
        self.open.push(OpenSide {
            proxy: proxy_key,
            handle: Handle::Http(handle),
            steps: stream_steps(exchange, start, duration),
        });
    }

    /// When the next step of anything open falls due (ns since epoch).
    pub fn next_due(&self) -> Option<u64> {
        self.open
            .iter()
            .filter_map(|side| side.steps.front().map(|(due, _)| *due))
            .min()
    }

    /// Sides not closed yet.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Delivers every step due at `now`, side by side, and forgets closed ones.
    pub fn run_due(&mut self, proxies: &mut BTreeMap<String, Proxy>, now: u64) {
        for side in &mut self.open {
            let proxy = proxies
                .get_mut(&side.proxy)
                .expect("every side has a proxy");
            while side.steps.front().is_some_and(|(due, _)| *due <= now) {
                let (_, step) = side.steps.pop_front().expect("front exists");
                deliver(proxy, &side.handle, step);
            }
        }
        self.open.retain(|side| !side.steps.is_empty());
    }
}

/// The steps of a stream after its request headers, interleaved over its duration.
fn stream_steps(exchange: &HttpExchange, start: u64, duration: u64) -> VecDeque<(u64, Step)> {
    let request = &exchange.request_body;
    let response_body: &[Vec<u8>] = exchange
        .response
        .as_ref()
        .map(|r| r.body.as_slice())
        .unwrap_or_default();
    let trailers = exchange.response.as_ref().and_then(|r| r.trailers.clone());
    let slots = request.len().max(response_body.len()).max(1);
    let mut steps = VecDeque::new();
    for k in 0..slots {
        let due = slot(start, duration, k, slots);
        if let Some(chunk) = request.get(k) {
            let last = k + 1 == request.len();
            steps.push_back((due, Step::RequestBody(chunk.clone(), last)));
        }
        if let (0, Some(response)) = (k, &exchange.response) {
            let ends = response.body.is_empty() && trailers.is_none();
            steps.push_back((due, Step::ResponseHeaders(response.headers.clone(), ends)));
        }
        if let Some(chunk) = response_body.get(k) {
            let last = k + 1 == response_body.len() && trailers.is_none();
            steps.push_back((due, Step::ResponseBody(chunk.clone(), last)));
        }
    }
    let end = start + duration;
    if let Some(trailers) = trailers {
        steps.push_back((end, Step::ResponseTrailers(trailers)));
    }
    steps.push_back((end, Step::HttpClose));
    steps
}

fn deliver(proxy: &mut Proxy, handle: &Handle, step: Step) {
    match (handle, step) {
        (Handle::Tcp(handle), Step::TcpData(direction, bytes, eos)) => {
            proxy
                .tcp_data(handle, direction, &bytes, eos)
                .expect(PROXY_INVARIANT);
        }
        (Handle::Tcp(handle), Step::TcpClose) => {
            proxy
                .close_tcp(handle.clone(), PeerType::Remote)
                .expect(PROXY_INVARIANT);
        }
        (Handle::Http(handle), Step::HttpClose) => {
            proxy.close_http(handle.clone()).expect(PROXY_INVARIANT);
        }
        (Handle::Http(handle), step) => {
            let http_step = match &step {
                Step::RequestBody(chunk, eos) => HttpStep::RequestBody(chunk, *eos),
                Step::ResponseHeaders(headers, eos) => HttpStep::ResponseHeaders(headers, *eos),
                Step::ResponseBody(chunk, eos) => HttpStep::ResponseBody(chunk, *eos),
                Step::ResponseTrailers(trailers) => HttpStep::ResponseTrailers(trailers),
                Step::TcpData(..) | Step::TcpClose | Step::HttpClose => {
                    unreachable!("TCP steps are scheduled on TCP handles only")
                }
            };
            proxy.http_step(handle, http_step).expect(PROXY_INVARIANT);
        }
        (Handle::Tcp(_), _) => unreachable!("HTTP steps are scheduled on HTTP handles only"),
    }
}
