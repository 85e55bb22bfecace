//! The proxy-wasm glue: the only code that talks to the host through the proxy-wasm SDK.
//!
//! [`root`] handles configuration, the report tick and the report call; [`http`] records each
//! finished stream, reading who it is between through [`peers`]; [`grpc_stream`] flushes the message counts of open gRPC streams at each
//! tick; [`tcp`] each connection; [`host`] wraps host calls so none can trap; [`vm`]
//! is the state one worker VM shares between them; `alloc` (wasm32 only) is the VM's small-block
//! allocator; [`access_log`] moves filter-shipped access-log records from requests to the report;
//! [`dimensions`] reads a request's extra dimension values.
//! Logic lives in the crate's pure modules; this layer only moves data
//! between the host and them.

pub(crate) mod access_log;
#[cfg(target_arch = "wasm32")]
pub(crate) mod alloc;
pub(crate) mod dimensions;
pub(crate) mod grpc_stream;
pub(crate) mod host;
pub(crate) mod http;
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
