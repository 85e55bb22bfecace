//! The `logproto` push messages, declared from Loki's published `pkg/push/push.proto` field
//! numbers. Only what a client sends: `PushRequest.format` and `EntryAdapter.parsed` (query-side)
//! are left out. Owns the wire shape only; building batches is `batch`'s job.

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: one label set and its entries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// Prometheus-style label set, `{a="b", c="d"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Computed by Loki from the labels; clients send 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one log line.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// Always set: Loki declares it non-nullable.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one structured-metadata entry.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Always in `0..1_000_000_000`, also before 1970.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// Splits nanoseconds since the Unix epoch the way protobuf requires (non-negative `nanos`).
    pub fn from_unix_nanos(nanos_since_epoch: i64) -> Self {
        Timestamp {
            seconds: nanos_since_epoch.div_euclid(1_000_000_000),
            nanos: nanos_since_epoch.rem_euclid(1_000_000_000) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn timestamp_keeps_nanos_non_negative() {
        assert_eq!(
            Timestamp::from_unix_nanos(1_500_000_001),
            Timestamp {
                seconds: 1,
                nanos: 500_000_001
            }
        );
        assert_eq!(
            Timestamp::from_unix_nanos(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
    }

    #[test]
    fn encodes_published_field_numbers() {
        // Hand-assembled bytes: stream(1){labels(1)="{a=\"b\"}", entries(2){timestamp(1){seconds(1)=1,
        // nanos(2)=2}, line(2)="x", structuredMetadata(3){name(1)="k", value(2)="v"}}}.
        let request = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{a=\"b\"}".into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp {
                        seconds: 1,
                        nanos: 2,
                    }),
                    line: "x".into(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "k".into(),
                        value: "v".into(),
                    }],
                }],
                hash: 0,
            }],
        };
        let expected: &[u8] = &[
            0x0a, 0x1c, // streams, 28 bytes
            0x0a, 0x07, b'{', b'a', b'=', b'"', b'b', b'"', b'}', // labels
            0x12, 0x11, // entries, 17 bytes
            0x0a, 0x04, 0x08, 0x01, 0x10, 0x02, // timestamp
            0x12, 0x01, b'x', // line
            0x1a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // structuredMetadata
        ];
        assert_eq!(request.encode_to_vec(), expected);
    }
}
