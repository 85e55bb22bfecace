//! TCP connections through a worker VM's network filter, in Envoy's order
//! (`extensions/common/wasm/context.cc`): `proxy_on_context_create(ctx, root)` and
//! `proxy_on_new_connection` when the connection opens; `proxy_on_downstream_data` for bytes
//! read from downstream and `proxy_on_upstream_data` for bytes written back to it, each seeing
//! its chunk through buffer type 2 / 3; an upstream chunk with end of stream is followed by
//! `proxy_on_upstream_connection_close(ctx, Unknown)`; the downstream close event gives
//! `proxy_on_downstream_connection_close(ctx, Local | Remote)`, then `proxy_on_done`,
//! `proxy_on_log`, `proxy_on_delete`.
//!
//! Only the callback sequence of one connection; keeping connections open across time is the
//! proxy's job.

use super::connection::{
    ConnectionOutcome, ConnectionState, Direction, PeerType, TcpConnectionSpec,
};
use super::plugins::Traffic;
use super::properties::Phase;
use super::vm::WorkerVm;

impl WorkerVm {
    /// Opens a connection on the NETWORK root: returns its context id, or `None` (with the
    /// outcome saying why) when the VM bypasses network traffic.
    pub fn open_connection(
        &mut self,
        spec: &TcpConnectionSpec,
    ) -> (Option<u32>, ConnectionOutcome) {
        let mut outcome = ConnectionOutcome::default();
        let Some(root) = self.root_for(Traffic::Network) else {
            outcome.bypassed = true;
            return (None, outcome);
        };
        let ctx = self.allocate_context();
        self.store.data_mut().connections.insert(
            ctx,
            ConnectionState {
                root,
                properties: spec.properties.clone(),
                ..ConnectionState::default()
            },
        );
        let id = ctx as i32;
        self.call::<(i32, i32), ()>("proxy_on_context_create", ctx, (id, root as i32));
        if self.call::<i32, i32>("proxy_on_new_connection", ctx, id) == Some(1) {
            outcome.paused_in.push("proxy_on_new_connection");
        }
        outcome.trapped = self.trap().map(str::to_string);
        (Some(ctx), outcome)
    }

    /// Delivers one chunk of an open connection.
    pub fn connection_data(
        &mut self,
        ctx: u32,
        direction: Direction,
        bytes: &[u8],
        end_of_stream: bool,
    ) -> ConnectionOutcome {
        let mut outcome = ConnectionOutcome::default();
        if !self.store.data().connections.contains_key(&ctx) || self.trap().is_some() {
            outcome.bypassed = true;
            return outcome;
        }
        let export = match direction {
            Direction::Downstream => "proxy_on_downstream_data",
            Direction::Upstream => "proxy_on_upstream_data",
        };
        self.with_connection(ctx, |c| {
            // What arrives with the first bytes (the metadata exchange's peer) is readable
            // from the first data callback on.
            c.phase = c.phase.max(Phase::Response);
            match direction {
                Direction::Downstream => c.downstream_data = bytes.to_vec(),
                Direction::Upstream => c.upstream_data = bytes.to_vec(),
            }
        });
        let args = (ctx as i32, bytes.len() as i32, i32::from(end_of_stream));
        if self.call::<(i32, i32, i32), i32>(export, ctx, args) == Some(1) {
            outcome.paused_in.push(export);
        }
        self.with_connection(ctx, |c| {
            c.downstream_data.clear();
            c.upstream_data.clear();
        });
        if direction == Direction::Upstream && end_of_stream {
            // Envoy reports the upstream close when it sees end of stream on the write path.
            let args = (ctx as i32, PeerType::Unknown as i32);
            self.call::<(i32, i32), ()>("proxy_on_upstream_connection_close", ctx, args);
        }
        outcome.trapped = self.trap().map(str::to_string);
        outcome
    }

    /// The downstream connection's close event, then done → log → delete.
    pub fn close_connection(&mut self, ctx: u32, closed_by: PeerType) -> ConnectionOutcome {
        let mut outcome = ConnectionOutcome::default();
        if !self.store.data().connections.contains_key(&ctx) {
            outcome.bypassed = true;
            return outcome;
        }
        let id = ctx as i32;
        self.call::<(i32, i32), ()>(
            "proxy_on_downstream_connection_close",
            ctx,
            (id, closed_by as i32),
        );
        self.with_connection(ctx, |c| c.phase = Phase::Log);
        self.call::<i32, i32>("proxy_on_done", ctx, id);
        self.call::<i32, ()>("proxy_on_log", ctx, id);
        self.call::<i32, ()>("proxy_on_delete", ctx, id);
        let state = self.store.data_mut();
        state.cancel_calls_of(ctx);
        state.connections.remove(&ctx);
        outcome.trapped = self.trap().map(str::to_string);
        outcome
    }

    /// Connections still open in this VM.
    pub fn open_connections(&self) -> usize {
        self.store.data().connections.len()
    }

    fn with_connection(&mut self, ctx: u32, edit: impl FnOnce(&mut ConnectionState)) {
        if let Some(connection) = self.store.data_mut().connections.get_mut(&ctx) {
            edit(connection);
        }
    }
}
