//! An Envoy-faithful proxy-wasm host (ABI v0.2.1) on wasmtime: one compiled [`FilterModule`],
//! [`Proxy`]s of several worker VMs each (one root context per plugin), Envoy's statuses,
//! properties, HTTP stream and TCP connection order, background `proxy_http_call`s and a manual
//! or real [`Clock`].
//!
//! What is and is not faithful to Envoy is listed in `tests/README.md`.

pub mod abi;
pub mod clock;
pub mod connection;
pub mod envoy_messages;
pub mod grpc_frames;
mod guest;
pub mod http_client;
mod imports_calls;
mod imports_core;
mod imports_shared;
pub mod module;
pub mod plugins;
pub mod properties;
pub mod proxy;
pub mod shared;
pub mod stream;
pub mod vm;
mod vm_http;
pub mod vm_state;
mod vm_tcp;
mod wasi;

use std::path::PathBuf;

pub use abi::{LogLevel, Status};
pub use clock::Clock;
pub use connection::{
    ConnectionOutcome, Direction, PeerType, TcpConnection, TcpConnectionSpec, TcpHandle,
};
pub use module::{provided_imports, FilterModule};
pub use plugins::{PluginSpec, Traffic};
pub use properties::{Phase, Properties, PropertyValue};
pub use proxy::{NodeInfo, Proxy, ProxyConfig};
pub use shared::{DispatchedCall, LogEntry, MetricValue};
pub use stream::{HttpExchange, HttpHandle, HttpStep, ResponseSpec, StreamOutcome};
pub use vm::{VmStatus, WorkerVm};

/// Failures of the host itself (not of the guest, whose traps are recorded on its VM).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading the filter module {path}: {source}")]
    ReadModule {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {message}")]
    Wasm {
        context: &'static str,
        message: String,
    },
    #[error("the module imports functions this host does not provide: {}", .0.join(", "))]
    UnsupportedImports(Vec<String>),
    #[error("the proxy has no worker {0}")]
    NoSuchWorker(usize),
    #[error(
        "worker {worker} has {open} open TCP connection(s) or HTTP stream(s); close them before replacing its VM"
    )]
    OpenConnections { worker: usize, open: usize },
    #[error(
        "the TCP connection or HTTP stream (context {context}) belongs to a VM that was replaced"
    )]
    StaleConnection { context: u32 },
}

impl HostError {
    pub(crate) fn wasm(context: &'static str) -> impl FnOnce(wasmtime::Error) -> HostError {
        move |error| HostError::Wasm {
            context,
            message: format!("{error:#}"),
        }
    }
}
