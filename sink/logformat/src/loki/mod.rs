//! Loki's push API body: the `logproto` protobuf messages (`proto`), stream label sets with Loki's
//! limits and Prometheus-style rendering (`labels`), and the batch builder that groups entries by
//! stream, applies line limits and encodes a snappy-block body (`batch`). No HTTP here: sending,
//! retries and tenants belong to the sink.

mod batch;
mod labels;
mod proto;

pub use batch::{
    EncodedPush, LogEntry, OversizeLinePolicy, PushBatch, PushBatchConfig, PushBatchCounters,
    PushBatchError, PushOutcome,
};
pub use labels::{
    LabelError, StreamLabels, MAX_LABEL_NAMES_PER_SERIES, MAX_LABEL_NAME_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
};
pub use proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

/// Loki's push endpoint path.
pub const PUSH_PATH: &str = "/loki/api/v1/push";
/// `Content-Type` of a protobuf push body (the body itself is snappy block-compressed).
pub const PUSH_CONTENT_TYPE: &str = "application/x-protobuf";
