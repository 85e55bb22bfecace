//! Samples older than `max_sample_age` taken out of a request body read back from the spool.
//!
//! Owns the slow path only: a spooled body is sent as written unless its oldest sample is past
//! the cutoff, and only then decoded (snappy, protobuf), filtered and encoded again with the
//! plain prost messages of `meshtap_remotewrite::proto`. It must not be used for fresh batches (the
//! encoder writes those).

use bytes::Bytes;
use prost::Message;

use crate::spool::{RecordMeta, SpooledBatch};
use meshtap_remotewrite::proto::WriteRequest;

/// Why a spooled body could not be filtered.
#[derive(Debug, thiserror::Error)]
pub enum SpooledBodyError {
    #[error("not snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("not a WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// Removes samples older than `cutoff_ms`; returns how many were removed. Whole-body cases
/// (all kept, all removed) do not decode anything.
pub fn drop_older_than(batch: &mut SpooledBatch, cutoff_ms: i64) -> Result<u64, SpooledBodyError> {
    let meta = batch.meta;
    if meta.oldest_ms >= cutoff_ms {
        return Ok(0);
    }
    if meta.newest_ms < cutoff_ms {
        batch.body = Bytes::new();
        batch.meta.samples = 0;
        return Ok(u64::from(meta.samples));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&batch.body)?;
    let mut request = WriteRequest::decode(&raw[..])?;
    let mut kept = 0u32;
    let mut oldest = i64::MAX;
    for series in &mut request.timeseries {
        series.samples.retain(|s| s.timestamp >= cutoff_ms);
        kept += series.samples.len() as u32;
        oldest = series
            .samples
            .iter()
            .map(|s| s.timestamp)
            .fold(oldest, i64::min);
    }
    request
        .timeseries
        .retain(|series| !series.samples.is_empty());
    batch.body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())?
        .into();
    batch.meta = RecordMeta {
        samples: kept,
        oldest_ms: oldest,
        ..meta
    };
    Ok(u64::from(meta.samples.saturating_sub(kept)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::joined_body::test_bodies::{decoded, spooled};

    #[test]
    fn only_samples_past_the_cutoff_go_and_empty_series_with_them() {
        let mut batch = spooled(&[&[10, 20, 30], &[5], &[40]]);
        assert_eq!(drop_older_than(&mut batch, 20).unwrap(), 2);
        assert_eq!(
            decoded(&batch.body),
            [("m0".into(), vec![20, 30]), ("m2".into(), vec![40])]
        );
        assert_eq!((batch.meta.samples, batch.meta.oldest_ms), (3, 20));
    }

    #[test]
    fn whole_bodies_are_kept_or_emptied_without_decoding() {
        let mut batch = spooled(&[&[10, 20]]);
        let body = batch.body.clone();
        assert_eq!(drop_older_than(&mut batch, 10).unwrap(), 0);
        assert_eq!(batch.body, body);
        assert_eq!(drop_older_than(&mut batch, 21).unwrap(), 2);
        assert!(batch.body.is_empty() && batch.meta.samples == 0);
    }
}
