//! Support shared by the end-to-end tests: a meshtap-sink running in-process in front of the
//! real Prometheus (`meshtap_test_support::prometheus`).

pub mod sink;
