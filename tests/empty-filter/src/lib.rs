//! Baselines for what meshtap's filter costs a request: a proxy-wasm filter built with the same
//! SDK (proxy-wasm 0.2.5), profile and allocator as `meshtap-filter`, that records nothing.
//!
//! Two variants, chosen by the plugin configuration (a JSON object):
//! - **empty** (any configuration without `"host_reads"`): an HTTP context that does nothing on
//!   the callbacks the host makes (the SDK's default `Continue` on every one), so a request
//!   costs only the SDK's dispatch (context create and delete, the callback shims);
//! - **reads** (a configuration with the key `"host_reads"`): the same, plus the ten host reads
//!   meshtap's `on_log` makes for an outbound mTLS request with the peer in filter state, made the
//!   way meshtap makes them (pre-serialized property paths, the request `content-type` in the
//!   request-headers callback), their values dropped unread.
//!
//! `cargo xtask bench filter` builds it for `wasm32-wasip1` and `filter_wasm` runs it in the same
//! host as meshtap, so meshtap's marginal fuel and ns over each variant come from one run. It
//! must not do anything else per request: whatever it does is subtracted from meshtap's figure.

use std::ptr::null_mut;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};

/// meshtap's small-block allocator, the same file, so both filters' allocations (the host
/// buffers of the reads above all) cost the same.
#[cfg(target_arch = "wasm32")]
#[path = "../../../filter/src/plugin/alloc.rs"]
mod alloc;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

/// The properties meshtap's `on_log` reads in the bench's case, in its order (the reporter's
/// listener direction, the cluster, the upstream peer's SAN and filter state, the outcome).
const ON_LOG_PROPERTIES: [&[u8]; 9] = [
    b"xds\0listener_direction",
    b"xds\0cluster_name",
    b"upstream\0uri_san_peer_certificate",
    b"filter_state\0upstream_peer",
    b"request\0duration",
    b"request\0total_size",
    b"response\0total_size",
    b"response\0code",
    b"response\0flags",
];

/// Reads one property and drops its value (the host allocates it through the guest).
fn read_property(path: &[u8]) {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host hands over a buffer of `size` bytes it allocated through this
    // module's `proxy_on_memory_allocate` (a `Vec<u8>` of exactly that capacity), which we take
    // over and free; on any other status nothing was allocated.
    unsafe {
        if proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) == 0
            && !data.is_null()
        {
            drop(Vec::from_raw_parts(data, size, size));
        }
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(BaselineRoot::default()) });
}}

/// The plugin: which variant its HTTP contexts are.
#[derive(Default)]
struct BaselineRoot {
    host_reads: bool,
}

impl Context for BaselineRoot {}

impl RootContext for BaselineRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.host_reads = config.windows(12).any(|w| w == b"\"host_reads\"");
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        if self.host_reads {
            Some(Box::new(ReadingRequest))
        } else {
            Some(Box::new(EmptyRequest))
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The **empty** variant: the SDK's defaults on every callback.
struct EmptyRequest;

impl Context for EmptyRequest {}

impl HttpContext for EmptyRequest {}

/// The **reads** variant: meshtap's ten host reads, nothing else.
struct ReadingRequest;

impl Context for ReadingRequest {}

impl HttpContext for ReadingRequest {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "content-type");
        Action::Continue
    }

    fn on_log(&mut self) {
        ON_LOG_PROPERTIES.into_iter().for_each(read_property);
    }
}
