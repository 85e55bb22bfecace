//! The network filter context (a `NETWORK` WasmPlugin): Istio's four `istio_tcp_*` counters per
//! connection, with the 23 TCP labels.
//!
//! Data callbacks only count bytes (and look at the first downstream bytes once, to leave HTTP
//! on network filter chains alone, see [`crate::record::tcp`]). The labels are computed once per
//! connection, in the connection's own callbacks where the host answers for it: at the first
//! downstream data if the peer metadata exchange already left the peer, else at the first
//! upstream data (by then the exchange is over on both sides), else at the close. Until then
//! nothing is recorded, which is how Istio counts "opened" once the peer is known. The VM's tick
//! flushes the byte deltas of open, labelled connections; the close flushes the rest.
//!
//! It never blocks a connection: every callback returns `Action::Continue`.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::{Action, BufferType};

use super::host::{int_property, property};
use super::http::RESPONSE_FLAGS;
use super::peers::{
    known_cluster, read_sides, reporter, reporter_peer_known, PeerSources, CLUSTER_NAME,
};
use super::vm::ActiveVm;
use crate::record::facts::RequestFacts;
use crate::record::labels::{compute, LabelRules};
use crate::record::tcp::{TcpFlow, Traffic, SNIFF_BYTES};
use crate::store::counters::{CounterKind, CounterValues};

/// A connection's counters and, once known, its TCP label values.
#[derive(Default)]
pub(crate) struct OpenConnection {
    flow: TcpFlow,
    labels: Option<Rc<[String]>>,
}

impl OpenConnection {
    /// The deltas to record and the labels to record them under; `None` until labelled or when
    /// there is nothing new.
    pub(crate) fn take_labelled_delta(
        &mut self,
        closing: bool,
    ) -> Option<(Rc<[String]>, CounterValues)> {
        let labels = self.labels.clone()?;
        let delta = self.flow.take_delta(closing)?;
        Some((labels, delta))
    }
}

/// Records one connection.
pub(crate) struct ConnectionRecorder {
    pub vm: Rc<RefCell<ActiveVm>>,
    connection: Rc<RefCell<OpenConnection>>,
    upstream_seen: bool,
}

impl ConnectionRecorder {
    pub(crate) fn new(vm: Rc<RefCell<ActiveVm>>) -> Self {
        let connection = Rc::new(RefCell::new(OpenConnection::default()));
        vm.borrow_mut()
            .open_connections
            .push(Rc::downgrade(&connection));
        ConnectionRecorder {
            vm,
            connection,
            upstream_seen: false,
        }
    }

    /// Computes the labels if they are still missing and `when` allows it.
    fn label(&self, when: LabelWhen) {
        let mut connection = self.connection.borrow_mut();
        let flow = &connection.flow;
        if connection.labels.is_some()
            || !flow.recorded()
            || (flow.traffic() == Traffic::Undecided && when != LabelWhen::Closing)
        {
            return;
        }
        let mut vm = self.vm.borrow_mut();
        connection.labels = connection_labels(&mut vm, when);
    }
}

/// The moment labels are attempted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LabelWhen {
    /// Only if the reporter's peer is already known.
    PeerKnown,
    /// Unconditionally (the metadata exchange is over, or the connection ends).
    Now,
    Closing,
}

impl Context for ConnectionRecorder {}

impl StreamContext for ConnectionRecorder {
    fn on_downstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        let first = if self.connection.borrow().flow.wants_first_bytes() && data_size > 0 {
            hostcalls::get_buffer(BufferType::DownstreamData, 0, data_size.min(SNIFF_BYTES))
                .ok()
                .flatten()
        } else {
            None
        };
        let newly_decided = {
            let flow = &mut self.connection.borrow_mut().flow;
            let undecided = flow.wants_first_bytes();
            flow.downstream_data(data_size, first.as_deref());
            undecided && !flow.wants_first_bytes()
        };
        if newly_decided {
            self.label(LabelWhen::PeerKnown);
        }
        Action::Continue
    }

    fn on_upstream_data(&mut self, data_size: usize, _end_of_stream: bool) -> Action {
        self.connection.borrow_mut().flow.upstream_data(data_size);
        if !self.upstream_seen && data_size > 0 {
            self.upstream_seen = true;
            self.label(LabelWhen::Now);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.label(LabelWhen::Closing);
        let flushed = self.connection.borrow_mut().take_labelled_delta(true);
        if let Some((labels, delta)) = flushed {
            self.vm
                .borrow_mut()
                .add_labelled_counters(CounterKind::Tcp, &labels, &delta);
        }
    }
}

/// The connection's 23 TCP label values, or `None` while the reporter's peer is unknown and
/// `when` is [`LabelWhen::PeerKnown`].
fn connection_labels(vm: &mut ActiveVm, when: LabelWhen) -> Option<Rc<[String]>> {
    vm.start_lookups();
    let reporter = reporter(vm);
    let sides = read_sides(vm, reporter, PeerSources::TCP);
    if when == LabelWhen::PeerKnown && !reporter_peer_known(reporter, &sides, &vm.caches) {
        return None;
    }
    let cluster = property(CLUSTER_NAME).map(|name| known_cluster(vm, &name));
    let response_flags = int_property(RESPONSE_FLAGS).unwrap_or(0) as u64;
    let cluster = cluster.map(|c| vm.caches.cluster(c));
    let facts = RequestFacts {
        cluster_name: cluster.map(|c| &*c.name),
        services: cluster.and_then(|c| c.services.as_ref()),
        response_flags,
        ..sides.facts(&vm.caches)
    };
    let rules = LabelRules {
        reporter,
        host_header_fallback: false,
    };
    compute(&vm.local, rules, &facts, &mut vm.scratch);
    vm.label_caps.apply(&mut vm.scratch, &mut []);
    Some(
        vm.scratch
            .tcp_values()
            .into_iter()
            .map(String::from)
            .collect(),
    )
}
