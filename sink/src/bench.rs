//! The ingest hot path as benchmarks and `cargo xtask bench ingest` call it: a compressed report
//! in, a compressed remote-write body out, beside a floor that only encodes and compresses the
//! same series with prost.
//!
//! Owns no behaviour of its own: it chains the real stages and must stay in step with them.

use std::sync::Arc;

use meshtap_report::{decode, validate, Report};
use prost::Message;

use crate::ingest::report_to_samples;
use meshtap_remotewrite::encoder::{compress_into, RequestEncoder};
use meshtap_remotewrite::proto;
use meshtap_remotewrite::sample::ExportSample;
use meshtap_remotewrite::series::Text;

/// Reusable state of [`ingest_to_remote_write`].
pub struct IngestBench {
    job: Text,
    encoder: RequestEncoder,
    external: Vec<(String, String)>,
}

impl Default for IngestBench {
    fn default() -> Self {
        IngestBench {
            job: Arc::from("integrations/istio"),
            encoder: RequestEncoder::new(),
            external: vec![("cluster".to_owned(), "bench".to_owned())],
        }
    }
}

impl IngestBench {
    /// Decodes, validates and converts a report body, then encodes and compresses all its
    /// samples as one remote-write body. Returns (samples, compressed body length).
    pub fn ingest_to_remote_write(&mut self, body: &[u8]) -> (usize, usize) {
        let report = decode(body, 64 << 20).expect("bench report decodes");
        validate(&report).expect("bench report is valid");
        let samples = report_to_samples(&report, &self.job);
        let queued: Vec<ExportSample> = samples.iter().map(ExportSample::from).collect();
        let len = self.encoder.encode(&queued, &self.external).len();
        (samples.len(), len)
    }

    /// The same series as prost messages (labels sorted, external label included), for the floor.
    pub fn as_write_request(&self, report: &Report) -> proto::WriteRequest {
        let samples = report_to_samples(report, &self.job);
        proto::WriteRequest {
            timeseries: samples
                .iter()
                .map(|s| {
                    let mut labels = Vec::new();
                    s.series.visit_labels(&self.external, |n, v| {
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
            metadata: Vec::new(),
        }
    }
}

/// The floor: prost encode and snappy of an already-built request. Returns the body length.
pub fn floor_encode(
    request: &proto::WriteRequest,
    compressor: &mut snap::raw::Encoder,
    out: &mut Vec<u8>,
) -> usize {
    let raw = request.encode_to_vec();
    compress_into(compressor, &raw, out).len()
}
