//! TCP connections of a running simulation that stay open while time passes: each one is
//! opened on its sidecars at once, then its chunks and its close fall due spread over the
//! call's duration (which may span report intervals), and are delivered to every sidecar that
//! sees the connection when the simulation's clock reaches them.
//!
//! Scheduling only; what each sidecar observes comes from `mesh_tcp.rs`.

use std::collections::{BTreeMap, VecDeque};

use crate::host::{Direction, PeerType, Proxy, TcpConnectionSpec, TcpHandle};

use super::mesh_tcp::TcpData;

/// One sidecar's part of a connection: its workload, the worker it runs on, what it sees.
pub struct ConnectionSide {
    pub workload: String,
    pub worker: usize,
    pub spec: TcpConnectionSpec,
}

enum Step {
    Data(Direction, Vec<u8>, bool),
    /// The client closes: every sidecar sees its downstream peer go away.
    Close,
}

struct OpenConnection {
    sides: Vec<(String, TcpHandle)>,
    /// Steps with the time (ns since epoch) each falls due, in order.
    steps: VecDeque<(u64, Step)>,
}

/// Every connection still open, in the order they were opened.
#[derive(Default)]
pub struct TcpConnections {
    open: Vec<OpenConnection>,
}

const PROXY_INVARIANT: &str =
    "the simulation never replaces VMs, so its workers and connection handles stay valid";

impl TcpConnections {
    /// Opens a connection on every side now (`start`), and schedules its data and close over
    /// `duration_nanos`: chunk pair k of n at start + duration·(k+1)/(n+1), close at the end.
    pub fn open(
        &mut self,
        proxies: &mut BTreeMap<String, Proxy>,
        sides: Vec<ConnectionSide>,
        data: TcpData,
        start: u64,
        duration_nanos: u64,
    ) {
        let mut handles = Vec::with_capacity(sides.len());
        for side in sides {
            let proxy = proxies
                .get_mut(&side.workload)
                .expect("sidecar workloads have proxies");
            let (handle, _) = proxy
                .open_tcp(side.worker, &side.spec)
                .expect(PROXY_INVARIANT);
            handles.push((side.workload, handle));
        }
        let pairs = data.sent.len().max(data.received.len()) as u64;
        let mut steps = VecDeque::new();
        for k in 0..pairs as usize {
            let due = start + duration_nanos * (k as u64 + 1) / (pairs + 1);
            for (direction, chunks) in [
                (Direction::Downstream, &data.sent),
                (Direction::Upstream, &data.received),
            ] {
                if let Some(chunk) = chunks.get(k) {
                    let last = k + 1 == chunks.len();
                    steps.push_back((due, Step::Data(direction, chunk.clone(), last)));
                }
            }
        }
        steps.push_back((start + duration_nanos, Step::Close));
        self.open.push(OpenConnection {
            sides: handles,
            steps,
        });
    }

    /// When the next step of any connection falls due (ns since epoch).
    pub fn next_due(&self) -> Option<u64> {
        self.open
            .iter()
            .filter_map(|c| c.steps.front().map(|(due, _)| *due))
            .min()
    }

    /// Connections not closed yet.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Delivers every step due at `now`, connection by connection, and forgets closed ones.
    pub fn run_due(&mut self, proxies: &mut BTreeMap<String, Proxy>, now: u64) {
        for connection in &mut self.open {
            while connection.steps.front().is_some_and(|(due, _)| *due <= now) {
                let (_, step) = connection.steps.pop_front().expect("front exists");
                for (workload, handle) in &connection.sides {
                    let proxy = proxies
                        .get_mut(workload)
                        .expect("sidecar workloads have proxies");
                    match &step {
                        Step::Data(direction, bytes, eos) => {
                            proxy
                                .tcp_data(handle, *direction, bytes, *eos)
                                .expect(PROXY_INVARIANT);
                        }
                        Step::Close => {
                            proxy
                                .close_tcp(handle.clone(), PeerType::Remote)
                                .expect(PROXY_INVARIANT);
                        }
                    }
                }
            }
        }
        self.open.retain(|c| !c.steps.is_empty());
    }
}
