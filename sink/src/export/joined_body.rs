//! Spooled records joined into one request: consecutive remote-write records, or Loki pushes,
//! sent together.
//!
//! Both protocols' bodies are a snappy block holding a protobuf message whose top-level fields
//! are all repeated (`WriteRequest.timeseries`, `PushRequest.streams`), and protobuf merges
//! concatenated encodings of a message by appending repeated fields. Records are therefore only
//! decompressed, concatenated and compressed again, never decoded. It must not be used for
//! bodies of any other shape.

use crate::spool::{RecordMeta, SpooledBatch};

/// Joins records (in order) into one body; returns it with the samples of records whose body
/// could not be decompressed (left out).
pub fn join_records(mut records: Vec<SpooledBatch>) -> (SpooledBatch, u64) {
    if records.len() == 1 {
        return (records.pop().expect("one record"), 0);
    }
    let mut decoder = snap::raw::Decoder::new();
    let mut raw = Vec::new();
    let mut meta = RecordMeta {
        samples: 0,
        oldest_ms: i64::MAX,
        newest_ms: i64::MIN,
    };
    let mut unreadable = 0u64;
    for record in &records {
        let len = snap::raw::decompress_len(&record.body).unwrap_or(0);
        let start = raw.len();
        raw.resize(start + len, 0);
        match decoder.decompress(&record.body, &mut raw[start..]) {
            Ok(n) => raw.truncate(start + n),
            Err(_) => {
                raw.truncate(start);
                unreadable += u64::from(record.meta.samples);
                continue;
            }
        }
        meta.samples += record.meta.samples;
        meta.oldest_ms = meta.oldest_ms.min(record.meta.oldest_ms);
        meta.newest_ms = meta.newest_ms.max(record.meta.newest_ms);
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compresses any input");
    (SpooledBatch { meta, body }, unreadable)
}

/// Remote-write bodies for the tests of spooled records.
#[cfg(test)]
pub(crate) mod test_bodies {
    use prost::Message;

    use crate::spool::{RecordMeta, SpooledBatch};
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
            },
            body: snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .unwrap(),
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
            },
            body: vec![0xff; 9],
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
}
