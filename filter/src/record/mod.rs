//! Recording: what one finished HTTP request, gRPC stream or TCP connection was, as plain data,
//! and Istio's label values computed from it.
//!
//! [`node`] is the local identity, [`peer`] (with [`protobuf`] and [`base64`]) decodes who the
//! peer is, [`facts`] holds a finished stream's values, [`labels`] and [`flags`] turn them into
//! Istio's label values, [`dimensions`] the extra dimensions of `overrides[].tags`; [`grpc`] and
//! [`tcp`] account a stream's messages and a connection's bytes; [`access_log`] selects a
//! request for the filter-shipped access logs and builds its record. Nothing here reads the host
//! (the glue does) or holds totals (that is [`crate::store`]).

pub mod access_log;
pub mod base64;
pub mod dimensions;
pub mod facts;
pub mod flags;
pub mod grpc;
pub mod labels;
pub mod node;
pub mod peer;
pub mod protobuf;
pub mod tcp;
