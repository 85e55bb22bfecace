//! The encoder's checks, shared by the property tests and the fuzz target: bytes become a
//! batch of samples (reported and scraped series mixed, few label names so that labels repeat
//! and collide with the external labels), and the request written for them must decode, with
//! prost, to exactly one `TimeSeries` per sample in order: its labels sorted and unique (the
//! series' own, then external labels whose name the series lacks), its value bit for bit and
//! its timestamp. The compressed body must decompress, with `snap`, to the uncompressed one, and
//! the spool's long-copy form of it must expand to it byte for byte.
//! A sample may keep the labels of the one before it and change only its bucket (`le`, or
//! `quantile` in the same place), as a histogram's series do one after another.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshtap_remotewrite::encoded_series::LabelInterner;
use meshtap_remotewrite::encoder::RequestEncoder;
use meshtap_remotewrite::long_copies;
use meshtap_remotewrite::proto::WriteRequest;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::{SeriesId, SeriesLabels};
use prost::Message;

const NAMES: [&str; 6] = ["app", "cluster", "instance", "job", "pod", "zone"];
const VALUES: [&str; 5] = ["a", "b", "reviews-v1", "", "é\"\n"];

/// Reads the next byte, 0 once the input is used up (so every input gives a batch).
struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

/// A label set: each name present when its bit is set, its value picked by the next byte.
/// Empty values are left out, as the sink never keeps them.
fn labels(bytes: &mut Bytes) -> BTreeMap<&'static str, &'static str> {
    let present = bytes.next();
    let mut out = BTreeMap::new();
    for (i, name) in NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            let value = VALUES[usize::from(bytes.next()) % VALUES.len()];
            if !value.is_empty() {
                out.insert(*name, value);
            }
        }
    }
    out
}

/// One sample from the input: its queued form and the labels it must be written with (before
/// external labels).
fn sample(
    bytes: &mut Bytes,
    interner: &mut LabelInterner,
    previous: &mut BTreeMap<&'static str, &'static str>,
) -> (ExportSample, Vec<(String, String)>) {
    let kind = bytes.next();
    let name = ["istio_requests_total", "m", "up"][usize::from(kind >> 4) % 3];
    let own = if kind & 0x40 != 0 {
        previous.clone()
    } else {
        labels(bytes)
    };
    previous.clone_from(&own);
    let value = match bytes.next() % 4 {
        0 => f64::from(bytes.next()),
        1 => meshtap_remotewrite::series::stale_nan(),
        2 => -0.0,
        _ => f64::from_bits(u64::from(bytes.next()) << 52 | 7),
    };
    let timestamp_ms = i64::from(bytes.next()) - 100;
    let le = (kind & 2 != 0).then(|| ["0.5", "+Inf"][usize::from(kind & 4) / 4]);
    let bucket_name = if kind & 8 != 0 { "quantile" } else { "le" };
    let mut expected: Vec<(String, String)> = own
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    expected.push(("__name__".into(), name.into()));
    let series = if kind & 1 == 0 {
        let pairs = own
            .iter()
            .map(|(n, v)| (Arc::from(*n), Arc::from(*v)))
            .collect();
        if let Some(le) = le {
            expected.push(("le".into(), le.into()));
        }
        ExportSeries::reported(SeriesId {
            name: Arc::from(name),
            labels: Arc::new(SeriesLabels::from_sorted(pairs)),
            le: le.map(Arc::from),
        })
    } else {
        let mut all: Vec<(&str, &str)> = own.into_iter().collect();
        all.push(("__name__", name));
        if let Some(le) = le {
            all.push((bucket_name, le));
            expected.push((bucket_name.into(), le.into()));
        }
        all.sort();
        ExportSeries::Encoded(Arc::new(interner.series(all)))
    };
    expected.sort();
    (
        ExportSample {
            series,
            value,
            timestamp_ms,
        },
        expected,
    )
}

/// Encodes the batch the bytes describe and checks the request, as described above.
pub fn check_encoding(data: &[u8]) {
    let mut bytes = Bytes(data.iter());
    let external: Vec<(String, String)> = labels(&mut bytes)
        .into_iter()
        .map(|(n, v)| (n.to_owned(), format!("ext-{v}")))
        .collect();
    let mut interner = LabelInterner::default();
    let mut batch = Vec::new();
    let mut previous = BTreeMap::new();
    while !bytes.is_empty() && batch.len() < 256 {
        batch.push(sample(&mut bytes, &mut interner, &mut previous));
    }
    let samples: Vec<ExportSample> = batch.iter().map(|(s, _)| s.clone()).collect();
    let mut encoder = RequestEncoder::new();
    let raw = encoder.encode_raw(&samples, &external).to_vec();
    let compressed = encoder.encode(&samples, &external).to_vec();
    let decompressed = snap::raw::Decoder::new()
        .decompress_vec(&compressed)
        .expect("the body is valid snappy");
    assert_eq!(
        decompressed, raw,
        "compressed body differs from the raw one"
    );
    // Moved out, the body is the same, again and again (each in the buffers left behind by
    // the one before), with the spool's form turned on, off and on: it expands to the body.
    let mut spool_encoder = RequestEncoder::new();
    for long in [true, true, false, true] {
        spool_encoder.set_long_form(long);
        let owned = spool_encoder.encode_owned(&samples, &external);
        assert_eq!(owned.snappy, compressed, "the body moved out");
        assert_eq!(owned.long_form.is_some(), long);
        if let Some(long_form) = owned.long_form {
            let mut expanded = Vec::new();
            long_copies::expand(&long_form, &mut expanded).expect("the spool's form expands");
            assert_eq!(expanded, compressed, "the spool's form expands to the body");
        }
    }
    let owned = encoder.encode_owned(&samples, &external);
    assert_eq!(
        owned.snappy, compressed,
        "the body moved out of a plain encoder"
    );
    assert!(owned.long_form.is_none());

    let request = WriteRequest::decode(&raw[..]).expect("the request decodes");
    assert_eq!(request.timeseries.len(), batch.len());
    for (series, (queued, own)) in request.timeseries.iter().zip(&batch) {
        let mut want = own.clone();
        for (name, value) in &external {
            if !own.iter().any(|(n, _)| n == name) {
                want.push((name.clone(), value.clone()));
            }
        }
        want.sort();
        let got: Vec<(String, String)> = series
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(got, want, "labels of {:?}", queued.series);
        assert_eq!(series.samples.len(), 1);
        assert_eq!(series.samples[0].value.to_bits(), queued.value.to_bits());
        assert_eq!(series.samples[0].timestamp, queued.timestamp_ms);
    }
}
