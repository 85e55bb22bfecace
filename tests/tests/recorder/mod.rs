//! A hand-written guest (WebAssembly text) that records every callback it receives, with its
//! arguments, into the shared queue `events`, plus the buffers and the filter-state properties
//! it reads on the way (upstream data twice: whole, then from byte 2 with an oversized
//! length); and the decoding of that queue for the host tests.
//!
//! The guest's only behaviour beyond recording: `on_configure` sets a tick period of
//! 1000 ms × the plugin configuration's length and refuses an empty configuration, and
//! `on_done` returns true.
// Each test file compiles this module on its own and uses a subset of it.
#![allow(dead_code)]

use meshtap_tests::host::{FilterModule, Proxy};
use std::sync::Arc;

/// Callback codes the guest records.
pub mod code {
    pub const CONTEXT_CREATE: u32 = 1;
    pub const VM_START: u32 = 2;
    pub const CONFIGURE: u32 = 3;
    pub const TICK: u32 = 4;
    pub const NEW_CONNECTION: u32 = 5;
    pub const DOWNSTREAM_DATA: u32 = 6;
    pub const UPSTREAM_DATA: u32 = 7;
    pub const DOWNSTREAM_CLOSE: u32 = 8;
    pub const UPSTREAM_CLOSE: u32 = 9;
    pub const DONE: u32 = 10;
    pub const LOG: u32 = 11;
    pub const DELETE: u32 = 12;
    pub const REQUEST_HEADERS: u32 = 13;
    pub const REQUEST_BODY: u32 = 14;
    pub const RESPONSE_HEADERS: u32 = 15;
    pub const RESPONSE_BODY: u32 = 16;
    /// A read: `ctx` = status, `a` = what was read (buffer type, [`GRPC_STATS`] or
    /// [`DOWNSTREAM_PEER`]); the bytes follow as `Event::bytes`.
    pub const READ: u32 = 100;
    /// `filter_state.envoy.filters.http.grpc_stats`, read in `on_log`.
    pub const GRPC_STATS: u32 = 99;
    /// `filter_state.downstream_peer`, read in `on_new_connection` and `on_downstream_data`.
    pub const DOWNSTREAM_PEER: u32 = 98;
}

const GUEST: &str = r#"
(module
  (import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "events")
  (data (i32.const 128) "filter_state\00envoy.filters.http.grpc_stats")
  (data (i32.const 192) "filter_state\00downstream_peer")
  (global $heap (mut i32) (i32.const 8192))
  (global $queue (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func $record (param $code i32) (param $ctx i32) (param $a i32) (param $b i32)
    (if (i32.eqz (global.get $queue))
      (then
        (drop (call $register (i32.const 16) (i32.const 6) (i32.const 40)))
        (global.set $queue (i32.load (i32.const 40)))))
    (i32.store (i32.const 64) (local.get $code))
    (i32.store (i32.const 68) (local.get $ctx))
    (i32.store (i32.const 72) (local.get $a))
    (i32.store (i32.const 76) (local.get $b))
    (drop (call $enqueue (global.get $queue) (i32.const 64) (i32.const 16))))
  ;; Records the status of a read and then the bytes read (ptr/len at 32/36).
  (func $record_read (param $status i32) (param $what i32)
    (call $record (i32.const 100) (local.get $status) (local.get $what) (i32.const 0))
    (drop (call $enqueue (global.get $queue) (i32.load (i32.const 32)) (i32.load (i32.const 36)))))
  (func $read_peer
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 0))
    (call $record_read
      (call $get_property (i32.const 192) (i32.const 28) (i32.const 32) (i32.const 36))
      (i32.const 98)))
  (func $read_buffer (param $kind i32) (param $len i32)
    (call $read_buffer_from (local.get $kind) (i32.const 0) (local.get $len)))
  (func $read_buffer_from (param $kind i32) (param $start i32) (param $len i32)
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 0))
    (call $record_read
      (call $get_buffer (local.get $kind) (local.get $start) (local.get $len) (i32.const 32) (i32.const 36))
      (local.get $kind)))
  (func (export "proxy_on_context_create") (param i32 i32)
    (call $record (i32.const 1) (local.get 0) (local.get 1) (i32.const 0)))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (call $record (i32.const 2) (local.get 0) (local.get 1) (i32.const 0))
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $record (i32.const 3) (local.get 0) (local.get 1) (i32.const 0))
    (call $read_buffer (i32.const 7) (local.get 1))
    (drop (call $set_tick (i32.mul (local.get 1) (i32.const 1000))))
    (i32.ne (local.get 1) (i32.const 0)))
  (func (export "proxy_on_tick") (param i32)
    (call $record (i32.const 4) (local.get 0) (i32.const 0) (i32.const 0)))
  (func (export "proxy_on_new_connection") (param i32) (result i32)
    (call $record (i32.const 5) (local.get 0) (i32.const 0) (i32.const 0))
    (call $read_peer)
    (i32.const 0))
  (func (export "proxy_on_downstream_data") (param i32 i32 i32) (result i32)
    (call $record (i32.const 6) (local.get 0) (local.get 1) (local.get 2))
    (call $read_buffer (i32.const 2) (local.get 1))
    (call $read_peer)
    (i32.const 0))
  (func (export "proxy_on_upstream_data") (param i32 i32 i32) (result i32)
    (call $record (i32.const 7) (local.get 0) (local.get 1) (local.get 2))
    (call $read_buffer (i32.const 3) (local.get 1))
    ;; From byte 2, asking for more than there is: Envoy returns the rest.
    (call $read_buffer_from (i32.const 3) (i32.const 2) (i32.const 1000))
    (i32.const 0))
  (func (export "proxy_on_downstream_connection_close") (param i32 i32)
    (call $record (i32.const 8) (local.get 0) (local.get 1) (i32.const 0)))
  (func (export "proxy_on_upstream_connection_close") (param i32 i32)
    (call $record (i32.const 9) (local.get 0) (local.get 1) (i32.const 0)))
  (func (export "proxy_on_done") (param i32) (result i32)
    (call $record (i32.const 10) (local.get 0) (i32.const 0) (i32.const 0))
    (i32.const 1))
  (func (export "proxy_on_log") (param i32)
    (call $record (i32.const 11) (local.get 0) (i32.const 0) (i32.const 0))
    (i32.store (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 0))
    (call $record_read
      (call $get_property (i32.const 128) (i32.const 42) (i32.const 32) (i32.const 36))
      (i32.const 99)))
  (func (export "proxy_on_delete") (param i32)
    (call $record (i32.const 12) (local.get 0) (i32.const 0) (i32.const 0)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $record (i32.const 13) (local.get 0) (local.get 1) (local.get 2))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $record (i32.const 14) (local.get 0) (local.get 1) (local.get 2))
    (call $read_buffer (i32.const 0) (local.get 1))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $record (i32.const 15) (local.get 0) (local.get 1) (local.get 2))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (call $record (i32.const 16) (local.get 0) (local.get 1) (local.get 2))
    (call $read_buffer (i32.const 1) (local.get 1))
    (i32.const 0))
)
"#;

/// The recording guest, compiled.
pub fn module() -> Arc<FilterModule> {
    let bytes = wat::parse_str(GUEST).expect("the recorder guest assembles");
    FilterModule::from_bytes(&bytes, false).expect("the recorder guest loads")
}

/// One recorded callback (or read, with its bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub code: u32,
    pub ctx: u32,
    pub a: u32,
    pub b: u32,
    pub bytes: Option<Vec<u8>>,
}

impl Event {
    /// A callback event without bytes.
    pub fn call(code: u32, ctx: u32, a: u32, b: u32) -> Event {
        Event {
            code,
            ctx,
            a,
            b,
            bytes: None,
        }
    }

    /// A read with status `status` of `what`, returning `bytes`.
    pub fn read(status: u32, what: u32, bytes: &[u8]) -> Event {
        Event {
            code: code::READ,
            ctx: status,
            a: what,
            b: 0,
            bytes: Some(bytes.to_vec()),
        }
    }
}

/// Drains every event recorded so far (all workers share the proxy's queue).
pub fn drain(proxy: &Proxy) -> Vec<Event> {
    let shared = proxy.shared();
    let Ok(queue) = shared.resolve_queue(&proxy.config().vm_id, "events") else {
        return Vec::new();
    };
    let mut events = Vec::new();
    while let Ok(item) = shared.dequeue(queue) {
        if let Some(read) = events
            .last_mut()
            .filter(|e: &&mut Event| e.code == code::READ && e.bytes.is_none())
        {
            read.bytes = Some(item);
            continue;
        }
        let word = |i: usize| u32::from_le_bytes(item[i * 4..i * 4 + 4].try_into().unwrap());
        events.push(Event::call(word(0), word(1), word(2), word(3)));
    }
    events
}
