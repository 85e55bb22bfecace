//! Writes a batch of samples as a snappy-compressed `prometheus.WriteRequest`.
//!
//! Owns the byte layout of sample requests: one `TimeSeries` per sample, labels sorted and
//! unique (series labels, `__name__`, `le`, then external labels that do not clash), fields in
//! the order prost would write them, so the output decodes as [`super::proto::WriteRequest`].
//! It must not decide what is sent or when.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::series::Sample;

/// Reusable buffers for encoding and compressing requests.
pub struct RequestEncoder {
    raw: Vec<u8>,
    compressor: snap::raw::Encoder,
    compressed: Vec<u8>,
}

fn string_field_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn label_len(name: &str, value: &str) -> usize {
    string_field_len(1, name) + string_field_len(2, value)
}

fn sample_len(value: f64, timestamp_ms: i64) -> usize {
    let value_len = if value.to_bits() == 0 { 0 } else { 1 + 8 };
    let ts_len = if timestamp_ms == 0 {
        0
    } else {
        1 + encoded_len_varint(timestamp_ms as u64)
    };
    value_len + ts_len
}

fn put_string_field(buf: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
}

impl Default for RequestEncoder {
    fn default() -> Self {
        RequestEncoder {
            raw: Vec::new(),
            compressor: snap::raw::Encoder::new(),
            compressed: Vec::new(),
        }
    }
}

impl RequestEncoder {
    pub fn new() -> RequestEncoder {
        RequestEncoder::default()
    }

    /// The uncompressed protobuf of `samples` (sorted, unique `external` labels added).
    pub fn encode_raw(&mut self, samples: &[Sample], external: &[(String, String)]) -> &[u8] {
        self.raw.clear();
        let buf = &mut self.raw;
        for sample in samples {
            let mut labels_len = 0usize;
            sample.series.visit_labels(external, |n, v| {
                let l = label_len(n, v);
                labels_len += 1 + encoded_len_varint(l as u64) + l;
            });
            let s_len = sample_len(sample.value, sample.timestamp_ms);
            let series_len = labels_len + 1 + encoded_len_varint(s_len as u64) + s_len;
            encode_key(1, WireType::LengthDelimited, buf);
            encode_varint(series_len as u64, buf);
            sample.series.visit_labels(external, |n, v| {
                encode_key(1, WireType::LengthDelimited, buf);
                encode_varint(label_len(n, v) as u64, buf);
                put_string_field(buf, 1, n);
                put_string_field(buf, 2, v);
            });
            encode_key(2, WireType::LengthDelimited, buf);
            encode_varint(s_len as u64, buf);
            if sample.value.to_bits() != 0 {
                encode_key(1, WireType::SixtyFourBit, buf);
                buf.extend_from_slice(&sample.value.to_le_bytes());
            }
            if sample.timestamp_ms != 0 {
                encode_key(2, WireType::Varint, buf);
                encode_varint(sample.timestamp_ms as u64, buf);
            }
        }
        &self.raw
    }

    /// The snappy block compressed request body of `samples`.
    pub fn encode(&mut self, samples: &[Sample], external: &[(String, String)]) -> &[u8] {
        self.encode_raw(samples, external);
        compress_into(&mut self.compressor, &self.raw, &mut self.compressed)
    }
}

/// Snappy block compression of `raw` into the reusable `out`.
pub fn compress_into<'a>(
    compressor: &mut snap::raw::Encoder,
    raw: &[u8],
    out: &'a mut Vec<u8>,
) -> &'a [u8] {
    out.resize(snap::raw::max_compress_len(raw.len()), 0);
    let n = compressor
        .compress(raw, out)
        .expect("output buffer sized by max_compress_len");
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message;

    use super::*;
    use crate::export::remote_write::proto;
    use crate::series::{stale_nan, LabelSet, SeriesId};

    #[test]
    fn bytes_match_the_prost_messages() {
        let labels = Arc::new(LabelSet::from_sorted(vec![
            (Arc::from("app"), Arc::from("reviews")),
            (Arc::from("pod"), Arc::from("p-1")),
        ]));
        let samples = vec![
            Sample {
                series: SeriesId {
                    name: Arc::from("m_bucket"),
                    labels: labels.clone(),
                    le: Some(Arc::from("+Inf")),
                },
                value: 3.0,
                timestamp_ms: 1_700_000_000_123,
            },
            Sample {
                series: SeriesId {
                    name: Arc::from("m_sum"),
                    labels,
                    le: None,
                },
                value: 0.0,
                timestamp_ms: 5,
            },
            Sample {
                series: SeriesId {
                    name: Arc::from("gone"),
                    labels: Arc::new(LabelSet::from_sorted(vec![])),
                    le: None,
                },
                value: stale_nan(),
                timestamp_ms: 6,
            },
        ];
        let external = vec![("cluster".to_owned(), "c1".to_owned())];
        let mut encoder = RequestEncoder::new();
        let raw = encoder.encode_raw(&samples, &external).to_vec();
        let expected = proto::WriteRequest {
            timeseries: samples
                .iter()
                .map(|s| {
                    let mut labels = Vec::new();
                    s.series.visit_labels(&external, |n, v| {
                        labels.push(proto::Label {
                            name: n.into(),
                            value: v.into(),
                        })
                    });
                    proto::TimeSeries {
                        labels,
                        samples: vec![proto::Sample {
                            value: s.value,
                            timestamp: s.timestamp_ms,
                        }],
                    }
                })
                .collect(),
            metadata: vec![],
        };
        assert_eq!(raw, expected.encode_to_vec());
        let compressed = encoder.encode(&samples, &external).to_vec();
        let decoded = snap::raw::Decoder::new()
            .decompress_vec(&compressed)
            .unwrap();
        assert_eq!(decoded, raw);
    }
}
