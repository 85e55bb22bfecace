//! The gRPC message counts of one HTTP stream while it is open, and the report tick's visit of
//! a VM's open gRPC streams, so `istio_request_messages_total` and
//! `istio_response_messages_total` move while a long stream lasts, as Istio reports them
//! ("periodically and at end").
//!
//! A gRPC stream with a message family enabled registers here when its request headers are seen;
//! its body callbacks count frames into it. Each tick, for every open stream the root makes the
//! stream the effective context (`proxy_set_effective_context`, honoured by Envoy for any live
//! context of the VM), reads its counts (the grpc_stats filter state, else the frames counted)
//! and, when they hold anything new, records the delta under the stream's 20 peer labels. The
//! labels are computed once, at the first tick that finds the reporter's peer from the metadata
//! exchange; until then the counts wait for a later tick or the stream's end, which records
//! what is left. The root's own context is made effective again after the visit. It must not
//! record requests (that is [`super::http`]).

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::BufferType;

use super::host::property;
use super::http::GRPC_STATS;
use super::peers::exchanged_peer_labels;
use super::vm::{register_open, ActiveVm};
use crate::record::grpc::{parse_grpc_stats, FrameCounter, MessageTally};
use crate::store::counters::{CounterKind, CounterValues};

/// One open gRPC stream's message counts, shared by its HTTP context and the VM's registry.
pub(crate) struct OpenGrpcStream {
    context_id: u32,
    /// Frames counted in the request (0) and response (1) bodies.
    frames: [FrameCounter; 2],
    tally: MessageTally,
    /// The stream's 20 peer labels, once a tick computed them.
    labels: Option<Rc<[String]>>,
    /// The response headers were seen.
    pub response_started: bool,
    /// The stream was logged: everything was handed out.
    ended: bool,
}

impl OpenGrpcStream {
    /// A stream of context `context_id`, registered with the VM's open streams.
    pub(crate) fn open(vm: &mut ActiveVm, context_id: u32) -> Rc<RefCell<OpenGrpcStream>> {
        let stream = Rc::new(RefCell::new(OpenGrpcStream {
            context_id,
            frames: Default::default(),
            tally: MessageTally::default(),
            labels: None,
            response_started: false,
            ended: false,
        }));
        register_open(&mut vm.open_grpc_streams, &stream);
        stream
    }

    /// Counts the frames of a body chunk of one direction (0 request, 1 response).
    pub(crate) fn count_frames(&mut self, direction: usize, body_size: usize) {
        let buffer = [BufferType::HttpRequestBody, BufferType::HttpResponseBody][direction];
        self.frames[direction].feed(body_size, |offset, size| {
            hostcalls::get_buffer(buffer, offset, size).ok().flatten()
        });
    }

    /// The stream's message counts so far, read in its context: Envoy's grpc_stats filter
    /// state when present, else the frames counted here.
    fn counts(&self) -> (u64, u64) {
        property(GRPC_STATS)
            .and_then(|bytes| parse_grpc_stats(&bytes))
            .unwrap_or((self.frames[0].messages(), self.frames[1].messages()))
    }

    /// At the stream's end (in its `on_log`): the counts not handed out yet, with the labels a
    /// tick computed if any. The stream then leaves the registry at the next tick.
    pub(crate) fn take_rest(&mut self) -> Option<(CounterValues, Option<Rc<[String]>>)> {
        self.ended = true;
        let delta = self.tally.take_delta(self.counts())?;
        Some((delta, self.labels.clone()))
    }

    /// The tick's visit, with the stream as the effective context: records what is new once the
    /// labels are known.
    fn flush(&mut self, vm: &mut ActiveVm) {
        let counts = self.counts();
        if !self.tally.has_news(counts) {
            return;
        }
        if self.labels.is_none() {
            self.labels = exchanged_peer_labels(vm, self.response_started);
        }
        let Some(labels) = &self.labels else {
            return;
        };
        if let Some(delta) = self.tally.take_delta(counts) {
            vm.add_labelled_counters(CounterKind::GrpcMessages, labels, &delta);
        }
    }
}

/// Records the new message counts of the VM's open gRPC streams (each tick, before the totals
/// are published) and forgets the streams that ended. `root_context` is made the effective
/// context again afterwards.
pub(crate) fn flush_open_streams(vm: &mut ActiveVm, root_context: u32) {
    if vm.open_grpc_streams.is_empty() {
        return;
    }
    let mut switched = false;
    for weak in std::mem::take(&mut vm.open_grpc_streams) {
        let Some(stream) = weak.upgrade() else {
            continue;
        };
        let mut open = stream.borrow_mut();
        if open.ended {
            continue;
        }
        if hostcalls::set_effective_context(open.context_id).is_ok() {
            switched = true;
            open.flush(vm);
        }
        drop(open);
        vm.open_grpc_streams.push(weak);
    }
    if switched {
        // BadArgument only for an unknown context: the root is always known.
        let _ = hostcalls::set_effective_context(root_context);
    }
}
