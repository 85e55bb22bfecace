//! Prometheus text format parser (being written).
