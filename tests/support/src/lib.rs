//! Loopback stand-ins for the services meshtap talks to, shared by the sink's tests and the
//! end-to-end tests: the [`loki`] push receiver, the real [`prometheus`] launcher, the
//! [`kube_api`] server the sink's discovery watches, and the live view's [`browser`] check;
//! [`counted_listener`] lets a test wait until the receivers have answered a killed sink's
//! last requests.
//!
//! Each one records or serves and checks nothing itself: assertions live in the tests. Nothing
//! here may depend on the filter's wasm host, so that the sink's tests build without wasmtime.

pub mod browser;
pub mod counted_listener;
pub mod kube_api;
pub mod loki;
pub mod prometheus;
