//! Operations: self-metrics and health endpoints.
//!
//! Owns how the sink reports on itself; it must not hold pipeline logic.

pub mod allocator;
pub mod health;
pub mod metrics;
