//! [`SampleLabels`]: a sample as the view reads it, whether a report's [`Sample`] (labels as
//! text) or a scrape's [`ExportSample`] (labels encoded), with the identity of the label set a
//! histogram's buckets share and a handle that keeps that identity from being reused.
//!
//! Owns the reading of both sample forms. It must not decide what the view does with them.

use std::any::Any;
use std::sync::Arc;

use meshtap_remotewrite::encoded_series::EncodedSeries;
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::Sample;

/// Keeps a label set alive, so that its [`SampleLabels::shared_labels_id`] names no other
/// label set while the pin is held.
pub type LabelsPin = Arc<dyn Any + Send + Sync>;

/// A sample as the view reads it: a report's [`Sample`] or a scrape's [`ExportSample`].
pub trait SampleLabels {
    fn name(&self) -> &str;
    /// The value of label `name`; `__name__` and `le` are asked through [`Self::name`] and
    /// [`Self::le`].
    fn label(&self, name: &str) -> Option<&str>;
    fn le(&self) -> Option<&str>;
    fn value(&self) -> f64;
    /// The identity of the labels other than `__name__`, `le` and `quantile`, which a
    /// histogram's buckets share: while the samples (or a [`Self::pin`]) are alive, two samples
    /// with the same identity have the same such labels.
    fn shared_labels_id(&self) -> usize;
    /// Holds what [`Self::shared_labels_id`] points at.
    fn pin(&self) -> LabelsPin;
}

impl SampleLabels for Sample {
    fn name(&self) -> &str {
        &self.series.name
    }
    fn label(&self, name: &str) -> Option<&str> {
        self.series.labels.get(name)
    }
    fn le(&self) -> Option<&str> {
        self.series.le.as_deref()
    }
    fn value(&self) -> f64 {
        self.value
    }
    fn shared_labels_id(&self) -> usize {
        Arc::as_ptr(&self.series.labels) as usize
    }
    fn pin(&self) -> LabelsPin {
        self.series.labels.clone()
    }
}

/// The value of own label `name` of an encoded series: its own labels first (two at most,
/// no scan of the shared ones), then all of them (a series with hundreds of labels may keep
/// `le` among its shared ones).
#[inline]
fn own_label<'a>(series: &'a EncodedSeries, name: &str) -> Option<&'a str> {
    match series.own_labels().find(|label| label.name() == name) {
        Some(label) => Some(label.value()),
        None => series.get(name),
    }
}

impl SampleLabels for ExportSample {
    fn name(&self) -> &str {
        match &self.series {
            ExportSeries::Labels(id) => &id.name,
            ExportSeries::Encoded(series) => own_label(series, "__name__").unwrap_or_default(),
        }
    }
    fn label(&self, name: &str) -> Option<&str> {
        match &self.series {
            ExportSeries::Labels(id) => id.labels.get(name),
            ExportSeries::Encoded(series) => series.get(name),
        }
    }
    fn le(&self) -> Option<&str> {
        match &self.series {
            ExportSeries::Labels(id) => id.le.as_deref(),
            ExportSeries::Encoded(series) => own_label(series, "le"),
        }
    }
    fn value(&self) -> f64 {
        self.value
    }
    fn shared_labels_id(&self) -> usize {
        match &self.series {
            ExportSeries::Labels(id) => Arc::as_ptr(&id.labels) as usize,
            ExportSeries::Encoded(series) => series.shared_labels_id(),
        }
    }
    fn pin(&self) -> LabelsPin {
        match &self.series {
            ExportSeries::Labels(id) => id.labels.clone(),
            ExportSeries::Encoded(series) => series.clone(),
        }
    }
}
