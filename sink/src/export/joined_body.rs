//! Spooled records joined into one request: consecutive remote-write records, or Loki pushes,
//! sent together.
//!
//! Both protocols' bodies are a snappy block holding a protobuf message whose top-level fields
//! are all repeated (`WriteRequest.timeseries`, `PushRequest.streams`), and protobuf merges
//! concatenated encodings of a message by appending repeated fields. A snappy block is its
//! uncompressed length (a varint) and then elements whose copies reach back by an offset within
//! what the block has produced so far, so the elements of consecutive blocks, behind one length
//! covering them all, decompress to the concatenated messages: records are joined without
//! being decompressed, decoded or compressed again (each body's integrity is its record's
//! CRC, checked when the spool reads it back). It must not be used for bodies of any other
//! shape.

use prost::encoding::encode_varint;

use crate::spool::{BodyForm, RecordMeta, SpooledBatch};

/// A snappy block's uncompressed length and where its elements start, if its preamble (a
/// varint of at most 32 bits) reads.
fn preamble(body: &[u8]) -> Option<(u64, usize)> {
    let mut len = 0u64;
    for (i, &byte) in body.iter().take(5).enumerate() {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return (len <= u64::from(u32::MAX)).then_some((len, i + 1));
        }
    }
    None
}

/// Joins records (in order) into one body; returns it with the samples of records whose body
/// has no snappy preamble (left out). Records come as they are sent (a long-copy body is
/// expanded before it is joined).
pub fn join_records(mut records: Vec<SpooledBatch>) -> (SpooledBatch, u64) {
    if records.len() == 1 {
        return (records.pop().expect("one record"), 0);
    }
    let mut meta = RecordMeta {
        samples: 0,
        oldest_ms: i64::MAX,
        newest_ms: i64::MIN,
        form: BodyForm::AsSent,
    };
    let mut unreadable = 0u64;
    let mut raw_len = 0u64;
    let mut elements = Vec::with_capacity(records.len());
    for record in &records {
        let Some((len, start)) = preamble(&record.body) else {
            unreadable += u64::from(record.meta.samples);
            continue;
        };
        raw_len += len;
        elements.push(&record.body[start..]);
        meta.samples += record.meta.samples;
        meta.oldest_ms = meta.oldest_ms.min(record.meta.oldest_ms);
        meta.newest_ms = meta.newest_ms.max(record.meta.newest_ms);
        debug_assert_eq!(
            record.meta.form,
            BodyForm::AsSent,
            "records are joined as sent"
        );
    }
    let mut body = Vec::with_capacity(10 + elements.iter().map(|e| e.len()).sum::<usize>());
    encode_varint(raw_len, &mut body);
    for part in elements {
        body.extend_from_slice(part);
    }
    (
        SpooledBatch {
            meta,
            body: body.into(),
        },
        unreadable,
    )
}

/// Remote-write bodies for the tests of spooled records.
#[cfg(test)]
pub(crate) mod test_bodies {
    use prost::Message;

    use crate::spool::{BodyForm, RecordMeta, SpooledBatch};
    use meshtap_remotewrite::proto::{Label, Sample, TimeSeries, WriteRequest};

    /// A record of one series per entry of `timestamps` (`m0`, `m1`, ...), value 1.
    pub fn spooled(timestamps: &[&[i64]]) -> SpooledBatch {
        let request = WriteRequest {
            timeseries: timestamps
                .iter()
                .enumerate()
                .map(|(i, ts)| TimeSeries {
                    labels: vec![Label {
                        name: "__name__".into(),
                        value: format!("m{i}"),
                    }],
                    samples: ts
                        .iter()
                        .map(|&timestamp| Sample {
                            value: 1.0,
                            timestamp,
                        })
                        .collect(),
                })
                .collect(),
            metadata: vec![],
        };
        let all: Vec<i64> = timestamps.iter().flat_map(|t| t.iter().copied()).collect();
        SpooledBatch {
            meta: RecordMeta {
                samples: all.len() as u32,
                oldest_ms: *all.iter().min().unwrap(),
                newest_ms: *all.iter().max().unwrap(),
                form: BodyForm::AsSent,
            },
            body: snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .unwrap()
                .into(),
        }
    }

    pub fn decoded(body: &[u8]) -> Vec<(String, Vec<i64>)> {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(&raw[..])
            .unwrap()
            .timeseries
            .into_iter()
            .map(|s| {
                let ts = s.samples.iter().map(|x| x.timestamp).collect();
                (s.labels[0].value.clone(), ts)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_bodies::{decoded, spooled};
    use super::*;

    #[test]
    fn joined_records_decode_as_one_request_in_order() {
        let first = spooled(&[&[10, 20], &[15]]);
        let second = spooled(&[&[30]]);
        let broken = SpooledBatch {
            meta: RecordMeta {
                samples: 7,
                oldest_ms: 1,
                newest_ms: 2,
                form: BodyForm::AsSent,
            },
            body: vec![0xff; 9].into(),
        };
        let (joined, unreadable) = join_records(vec![first, broken, second]);
        assert_eq!(unreadable, 7);
        assert_eq!(
            decoded(&joined.body),
            [
                ("m0".into(), vec![10, 20]),
                ("m1".into(), vec![15]),
                ("m0".into(), vec![30])
            ]
        );
        assert_eq!(
            (
                joined.meta.samples,
                joined.meta.oldest_ms,
                joined.meta.newest_ms
            ),
            (4, 10, 30)
        );
    }

    /// Records of several snappy blocks each (over 64 KiB uncompressed), full of copies.
    #[test]
    fn large_records_join_without_recompression() {
        let timestamps: Vec<[i64; 2]> = (0..5000).map(|i| [i, i + 1]).collect();
        let series: Vec<&[i64]> = timestamps.iter().map(|t| &t[..]).collect();
        let (a, b) = (spooled(&series), spooled(&series[..4000]));
        let lens = a.body.len() + b.body.len();
        let (joined, unreadable) = join_records(vec![a, b]);
        assert_eq!(unreadable, 0);
        assert!(joined.body.len() <= lens, "the bodies, one preamble less");
        let decoded = decoded(&joined.body);
        assert_eq!(decoded.len(), 9000);
        assert_eq!(decoded[4999], ("m4999".into(), vec![4999, 5000]));
        assert_eq!(decoded[5000], ("m0".into(), vec![0, 1]));
        assert_eq!(joined.meta.samples, 18000);
    }
}
