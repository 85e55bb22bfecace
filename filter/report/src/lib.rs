//! The contract between meshtap's filter and its sink.
//!
//! This crate owns two things and nothing else:
//! - [`proto`]: the report a filter posts to the sink every interval (protobuf via prost, no
//!   `protoc` needed), [`codec`], its snappy framing and size-bounded decoding, and [`refs`],
//!   which resolves the string-table form of label values on decode;
//! - [`schema`]: Istio's standard metric names, label names in Istio's order and Envoy's default
//!   histogram buckets, so the filter and the sink cannot disagree about them.
//!
//! It must stay free of any proxy-wasm or async dependency: it is compiled into the `.wasm`
//! filter, into the sink, and into the tests' Envoy stand-in, and it runs under Node's V8 in the
//! `wasm-bindgen-test` suite.

pub mod codec;
pub mod proto;
pub mod refs;
pub mod schema;
pub mod validate;

pub use codec::{decode, encode, DecodeError};
pub use proto::{
    AccessLogRecord, FilterStats, MetricFamily, MetricKind, Proxy, Report, Series, CHANNEL_HTTP,
    CHANNEL_TCP,
};
pub use validate::{validate, ValidationError};

/// Version of the report protocol carried in [`Report::protocol_version`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Path the sink serves reports on.
pub const REPORT_PATH: &str = "/v1/reports";

/// Request header naming the reporting pod as `<namespace>/<pod>`; used to route a pod's reports
/// to one sink replica. The sink trusts the identity inside the report body, not this header.
pub const POD_HEADER: &str = "x-meshtap-pod";

/// Content type of a report body (protobuf, snappy block compressed).
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// Content encoding of a report body.
pub const CONTENT_ENCODING: &str = "snappy";
