//! meshtap's test support: an Envoy-faithful proxy-wasm [`host`] for the compiled filter, the
//! [`sim`] that drives a simulated mesh through it, [`bench`] helpers and the [`fuel_profile`]
//! for `cargo xtask bench`, the real [`prometheus`] the end-to-end tests write into, and the
//! [`loki`] receiver the log tests push to.
//!
//! Library code only; the `meshtap-sim` binary is a thin CLI over [`sim`].

pub mod bench;
pub mod filter_wasm;
pub mod fuel_profile;
pub mod host;
pub mod loki;
pub mod prometheus;
pub mod sim;
