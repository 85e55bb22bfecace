//! The samples a remote-write endpoint queues: a reported series ([`SeriesId`], labels as text) or a
//! scraped one ([`EncodedSeries`], labels already encoded), with its value and timestamp.
//!
//! Owns the choice between the two series forms and the lane hash of each. It must not
//! encode requests nor decide what is sent.

use std::sync::Arc;

use crate::encoded_series::EncodedSeries;
use crate::series::{Sample, SeriesId};

/// The series of a queued sample, 16 bytes: a reported series is boxed, so that every queued
/// sample (most are scraped, and a slow endpoint holds hundreds of thousands) is 32 bytes
/// rather than 56.
#[derive(Clone, Debug)]
pub enum ExportSeries {
    /// From a filter report.
    Labels(Box<SeriesId>),
    /// From a scrape.
    Encoded(Arc<EncodedSeries>),
}

impl ExportSeries {
    /// A reported series.
    pub fn reported(id: SeriesId) -> ExportSeries {
        ExportSeries::Labels(Box::new(id))
    }

    /// Hash used to pick a lane: all samples of one series always share a lane.
    pub fn shard_hash(&self) -> u64 {
        match self {
            ExportSeries::Labels(id) => id.shard_hash(),
            ExportSeries::Encoded(series) => series.shard_hash(),
        }
    }
}

/// One value of one series at one time, as queued for remote-write.
#[derive(Clone, Debug)]
pub struct ExportSample {
    pub series: ExportSeries,
    pub value: f64,
    pub timestamp_ms: i64,
}

impl From<&Sample> for ExportSample {
    fn from(sample: &Sample) -> ExportSample {
        ExportSample {
            series: ExportSeries::reported(sample.series.clone()),
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_sample_is_32_bytes() {
        assert_eq!(std::mem::size_of::<ExportSeries>(), 16);
        assert_eq!(std::mem::size_of::<ExportSample>(), 32);
    }
}
