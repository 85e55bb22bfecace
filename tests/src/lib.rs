//! Envoy stand-in (being written).
