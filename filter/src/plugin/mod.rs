//! The proxy-wasm glue: the host-facing room, the only code that talks to the host through the
//! proxy-wasm SDK.
//!
//! [`root`] handles configuration, the report tick and the report call; [`http`] records each
//! finished stream, reading who it is between through [`peers`] and its extra dimension values
//! through [`dimensions`]; [`grpc_stream`] flushes the message counts of open gRPC streams at
//! each tick; [`tcp`] records each connection; [`access_log`] moves filter-shipped access-log
//! records from requests to the report in flight; [`host`] wraps host calls so none can trap;
//! [`vm`] is the state one worker VM shares between them, with [`id_caches`], the host values it
//! recognised by their raw bytes; `alloc` (wasm32 only) is the VM's
//! small-block allocator. Logic lives in the pure rooms ([`crate::record`], [`crate::store`],
//! [`crate::proxy`], [`crate::report`]); this layer only moves data between the host and them.

pub(crate) mod access_log;
#[cfg(target_arch = "wasm32")]
pub(crate) mod alloc;
pub(crate) mod dimensions;
pub(crate) mod grpc_stream;
pub(crate) mod host;
pub(crate) mod http;
pub(crate) mod id_caches;
pub(crate) mod peers;
pub(crate) mod root;
pub(crate) mod tcp;
pub(crate) mod vm;

proxy_wasm::main! {{
    // Also installs the SDK's panic hook, which logs a panic before the VM traps.
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::MeshtapRoot::new(context_id))
    });
}}
