//! Recording: what one finished HTTP request, gRPC stream or TCP connection was, as plain data,
//! and Istio's label values computed from it.
//!
//! [`node`] is the local identity, [`peer`] (with [`protobuf`] and [`base64`]) decodes who the
//! peer is, [`facts`] holds a finished stream's values, [`labels`] and [`flags`] turn them into
//! Istio's label values, [`dimensions`] the extra dimensions of `overrides[].tags`; [`grpc`] and
//! [`tcp`] account a stream's messages and a connection's bytes; [`access_log`] selects a
//! request for the filter-shipped access logs and builds its record. Nothing here reads the host
//! (the glue does) or holds totals (that is [`crate::store`]).

pub(crate) mod access_log;
pub(crate) mod base64;
pub(crate) mod dimensions;
pub(crate) mod facts;
pub(crate) mod flags;
pub(crate) mod grpc;
pub(crate) mod labels;
pub(crate) mod node;
pub(crate) mod peer;
pub(crate) mod protobuf;
pub(crate) mod tcp;

pub use dimensions::Dimensions;
pub use facts::RequestFacts;
pub use labels::{compute, LabelRules, LabelValues};
pub use node::LocalNode;
pub use peer::{ClusterServices, PeerInfo};
