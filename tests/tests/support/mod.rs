//! Support shared by the end-to-end tests: a meshtap-sink running in-process in front of the
//! real Prometheus (`meshtap_test_support::prometheus`), and the demo as `cargo xtask demo`
//! runs it (simulator binary, its cluster and the sink on the simulator's config).

pub mod demo_mesh;
pub mod sink;
