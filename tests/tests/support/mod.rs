//! Support shared by the end-to-end tests: the real Prometheus they write into, and a
//! meshtap-sink running in-process in front of it.

pub mod prometheus;
pub mod sink;
