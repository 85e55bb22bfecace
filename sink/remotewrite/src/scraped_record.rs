//! One scraped sample as a `TimeSeries` record: its interned labels with the endpoint's
//! external labels spliced in, the record's header and sample field as pieces that often repeat
//! the previous record's, and the prefetching that keeps the series' memory ahead of the loop.
//!
//! Owns the record of an encoded series; the byte layout of fields is the encoder's, the
//! copies and literals are the request body's.

use std::sync::Arc;

use crate::encoded_series::{prefetch, EncodedLabel, EncodedSeries, OWN};
use crate::encoder::{
    put_sample_field_prefix, put_time_series_header, put_timestamp_field, sample_len,
};
use crate::external_labels::ExternalLabels;
use crate::request_body::{Piece, RequestBody};
use crate::sample::{ExportSample, ExportSeries};

/// Samples ahead of sample `i` whose scraped series are brought into cache: the series itself
/// [`SERIES_AHEAD`] samples ahead, its label pointers (read through the series, by then in
/// cache) [`LABELS_AHEAD`] ahead.
const SERIES_AHEAD: usize = 8;
const LABELS_AHEAD: usize = 4;

pub(super) fn prefetch_ahead(samples: &[ExportSample], i: usize) {
    if let Some(ExportSeries::Encoded(series)) = samples.get(i + SERIES_AHEAD).map(|s| &s.series) {
        prefetch(Arc::as_ptr(series));
    }
    if let Some(ExportSeries::Encoded(series)) = samples.get(i + LABELS_AHEAD).map(|s| &s.series) {
        series.prefetch_labels();
    }
}

/// Writes a scraped sample: its encoded labels (laid out in `labels`, a scratch list), with the
/// external labels it does not have spliced in at their sorted positions. A series of the
/// layout the body noted last has its labels written from that note, without being laid out.
pub(super) fn put_encoded_time_series<'a>(
    body: &mut impl RequestBody,
    series: &'a EncodedSeries,
    sample: &ExportSample,
    external: &[(String, String)],
    external_fields: &mut ExternalLabels,
    labels: &mut Vec<&'a EncodedLabel>,
    sample_fields: &mut SampleFieldPieces,
) {
    let has_value = sample.value.to_bits() != 0;
    let fields = sample_fields.at(sample.timestamp_ms);
    let s_len = fields.len[usize::from(has_value)];
    let layout = series.layout();
    if let Some(others_len) = body.repeats_layout(layout) {
        let labels_len = others_len + series.own_fields_len();
        let header = Piece::of(|buf| put_time_series_header(buf, labels_len, s_len));
        body.piece(HEADER, &header);
        body.repeat_labels(series.own_labels());
    } else {
        series.labels_into(labels);
        let labels = &labels[..];
        external_fields.place(labels, external);
        let labels_len = series.fields_len() + external_fields.spliced_len();
        let header = Piece::of(|buf| put_time_series_header(buf, labels_len, s_len));
        body.piece(HEADER, &header);
        body.begin_labels();
        let mut done = 0;
        for &(at, j) in external_fields.splices() {
            body.labels(&labels[done..at]);
            let (key, field) = external_fields.get(j);
            body.label(key, field);
            done = at;
        }
        body.labels(&labels[done..]);
        body.end_labels();
        let (own, own_len) = own_indexes(series, external_fields.splices());
        body.note_layout(layout, &own[..own_len]);
    }
    // The sample field in three pieces: its key, length and value key; the value; the
    // timestamp field. Each often equals the previous record's (a histogram's upper buckets
    // share their count).
    body.piece(SAMPLE_PREFIX, &fields.prefix[usize::from(has_value)]);
    if has_value {
        body.piece(VALUE, &Piece::from_slice(&sample.value.to_le_bytes()));
    }
    if sample.timestamp_ms != 0 {
        body.piece(TIMESTAMP, &fields.timestamp);
    }
}

/// The pieces of a sample field that depend only on its timestamp and on whether it has a
/// value, made once per timestamp (the samples of one scrape share theirs).
#[derive(Default)]
pub(super) struct SampleFieldPieces {
    timestamp_ms: Option<i64>,
    /// The field's length, then its key, length and value key: without a value, with one.
    len: [usize; 2],
    prefix: [Piece; 2],
    /// The timestamp field.
    timestamp: Piece,
}

impl SampleFieldPieces {
    fn at(&mut self, timestamp_ms: i64) -> &SampleFieldPieces {
        if self.timestamp_ms != Some(timestamp_ms) {
            for (i, value) in [0.0, 1.0].into_iter().enumerate() {
                self.len[i] = sample_len(value, timestamp_ms);
                self.prefix[i] = Piece::of(|buf| put_sample_field_prefix(buf, value, timestamp_ms));
            }
            self.timestamp = Piece::of(|buf| put_timestamp_field(buf, timestamp_ms));
            self.timestamp_ms = Some(timestamp_ms);
        }
        self
    }
}

/// Indexes of the series' own labels among the labels written, external labels spliced in at
/// `splices` (index among the series' labels, external label).
fn own_indexes(series: &EncodedSeries, splices: &[(usize, usize)]) -> ([usize; OWN], usize) {
    let mut own = [0; OWN];
    let mut len = 0;
    for (at, _) in series.own_places() {
        own[len] = at + splices.iter().filter(|(splice, _)| *splice <= at).count();
        len += 1;
    }
    (own, len)
}

/// [`RequestBody::piece`] kinds of a scraped sample's record.
const HEADER: usize = 0;
const SAMPLE_PREFIX: usize = 1;
const VALUE: usize = 2;
const TIMESTAMP: usize = 3;
