//! meshtap's test support: an Envoy-faithful proxy-wasm [`host`] for the compiled filter, the
//! [`sim`] that drives a simulated mesh through it, and [`bench`] helpers and the
//! [`fuel_profile`] for `cargo xtask bench`. The stand-ins for Prometheus and Loki that the
//! end-to-end tests write into live in `meshtap-test-support` (`tests/support`).
//!
//! Library code only; the `meshtap-sim` binary is a thin CLI over [`sim`].

pub mod bench;
pub mod filter_wasm;
pub mod fuel_profile;
pub mod host;
pub mod sim;
