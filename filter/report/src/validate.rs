//! Structural checks of a decoded report, shared by the sink (which rejects bad reports with a
//! clear 400) and the tests. It checks shape, not Istio semantics.

use crate::proto::{MetricKind, Report, Series};

/// The first thing wrong with a report.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("report has no proxy identity (namespace and pod are required)")]
    MissingProxy,
    #[error("channel {0:?} is not empty or 1 to 32 lower-case letters, digits and '_'")]
    BadChannel(String),
    #[error("family {index}: metric name {name:?} is not a valid Prometheus name")]
    BadMetricName { index: usize, name: String },
    #[error("family {family}: label name {name:?} is not a valid Prometheus label name")]
    BadLabelName { family: String, name: String },
    #[error("family {family}: label {name:?} appears twice")]
    DuplicateLabel { family: String, name: String },
    #[error("family {family}: kind {kind} is not counter, gauge or histogram")]
    BadKind { family: String, kind: i32 },
    #[error("family {family}: {count} labels, over the limit of {max}")]
    TooManyLabels {
        family: String,
        count: usize,
        max: usize,
    },
    #[error("family {family}: histogram bounds must be finite and strictly increasing")]
    BadBounds { family: String },
    #[error("family {family} series {series}: {got} label values for {want} label names")]
    LabelCount {
        family: String,
        series: usize,
        got: usize,
        want: usize,
    },
    #[error("family {family} series {series}: carries both label values and label references")]
    MixedLabelForms { family: String, series: usize },
    #[error("family {family} series {series}: label reference {index} is outside the string table of {strings}")]
    LabelRef {
        family: String,
        series: usize,
        index: u32,
        strings: usize,
    },
    #[error("family {family} series {series}: {got} bucket counts for {want} buckets")]
    BucketCount {
        family: String,
        series: usize,
        got: usize,
        want: usize,
    },
    #[error("family {family} series {series}: value {value} is negative or not finite")]
    BadValue {
        family: String,
        series: usize,
        value: f64,
    },
}

/// Most labels a family may declare (Mimir's default `max_label_names_per_series` is 30, and
/// the sink adds its target labels).
pub const MAX_FAMILY_LABELS: usize = 40;

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// The reference form of a series' labels: not mixed with inline values, every index inside
/// [`Report::strings`].
pub fn check_label_refs(
    report: &Report,
    family: &str,
    series: usize,
    s: &Series,
) -> Result<(), ValidationError> {
    if !s.label_values.is_empty() {
        return Err(ValidationError::MixedLabelForms {
            family: family.to_string(),
            series,
        });
    }
    match s
        .label_refs
        .iter()
        .find(|r| **r as usize >= report.strings.len())
    {
        Some(index) => Err(ValidationError::LabelRef {
            family: family.to_string(),
            series,
            index: *index,
            strings: report.strings.len(),
        }),
        None => Ok(()),
    }
}

/// Checks a report's shape: identity present, names valid, every series consistent with its
/// family, values finite (counters and histograms non-negative).
pub fn validate(report: &Report) -> Result<(), ValidationError> {
    match &report.proxy {
        Some(p) if !p.namespace.is_empty() && !p.pod.is_empty() => {}
        _ => return Err(ValidationError::MissingProxy),
    }
    let channel = &report.channel;
    if channel.len() > 32
        || !channel
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ValidationError::BadChannel(channel.clone()));
    }
    for (index, fam) in report.families.iter().enumerate() {
        if !is_metric_name(&fam.name) {
            return Err(ValidationError::BadMetricName {
                index,
                name: fam.name.clone(),
            });
        }
        let family = || fam.name.clone();
        let kind = MetricKind::try_from(fam.kind)
            .ok()
            .filter(|k| *k != MetricKind::Unspecified)
            .ok_or(ValidationError::BadKind {
                family: family(),
                kind: fam.kind,
            })?;
        if fam.label_names.len() > MAX_FAMILY_LABELS {
            return Err(ValidationError::TooManyLabels {
                family: family(),
                count: fam.label_names.len(),
                max: MAX_FAMILY_LABELS,
            });
        }
        for (i, name) in fam.label_names.iter().enumerate() {
            if !is_label_name(name) || name == "le" {
                return Err(ValidationError::BadLabelName {
                    family: family(),
                    name: name.clone(),
                });
            }
            if fam.label_names[..i].contains(name) {
                return Err(ValidationError::DuplicateLabel {
                    family: family(),
                    name: name.clone(),
                });
            }
        }
        if kind == MetricKind::Histogram
            && (fam.bounds.iter().any(|b| !b.is_finite())
                || fam.bounds.windows(2).any(|w| w[0] >= w[1]))
        {
            return Err(ValidationError::BadBounds { family: family() });
        }
        for (series, s) in fam.series.iter().enumerate() {
            let got = if s.label_refs.is_empty() {
                s.label_values.len()
            } else {
                check_label_refs(report, &fam.name, series, s)?;
                s.label_refs.len()
            };
            if got != fam.label_names.len() {
                return Err(ValidationError::LabelCount {
                    family: family(),
                    series,
                    got,
                    want: fam.label_names.len(),
                });
            }
            match kind {
                MetricKind::Histogram => {
                    if s.bucket_counts.len() != fam.bounds.len() + 1 {
                        return Err(ValidationError::BucketCount {
                            family: family(),
                            series,
                            got: s.bucket_counts.len(),
                            want: fam.bounds.len() + 1,
                        });
                    }
                    if !s.sum.is_finite() {
                        return Err(ValidationError::BadValue {
                            family: family(),
                            series,
                            value: s.sum,
                        });
                    }
                }
                MetricKind::Counter if !(s.value.is_finite() && s.value >= 0.0) => {
                    return Err(ValidationError::BadValue {
                        family: family(),
                        series,
                        value: s.value,
                    });
                }
                MetricKind::Gauge if !s.value.is_finite() => {
                    return Err(ValidationError::BadValue {
                        family: family(),
                        series,
                        value: s.value,
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MetricFamily, Proxy, Series};

    fn ok_report() -> Report {
        Report {
            protocol_version: 1,
            proxy: Some(Proxy {
                namespace: "default".into(),
                pod: "p-1".into(),
                ..Default::default()
            }),
            families: vec![MetricFamily {
                name: "istio_request_bytes".into(),
                kind: MetricKind::Histogram as i32,
                label_names: vec!["reporter".into()],
                bounds: vec![1.0, 5.0],
                series: vec![Series {
                    label_values: vec!["source".into()],
                    bucket_counts: vec![1, 0, 2],
                    sum: 20.0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn accepts_a_good_report_and_names_the_first_fault() {
        assert_eq!(validate(&ok_report()), Ok(()));

        let mut r = ok_report();
        r.proxy = None;
        assert_eq!(validate(&r), Err(ValidationError::MissingProxy));
        let mut tcp = ok_report();
        tcp.channel = crate::CHANNEL_TCP.into();
        assert_eq!(validate(&tcp), Ok(()));
        tcp.channel = "TCP/1".into();
        assert_eq!(
            validate(&tcp),
            Err(ValidationError::BadChannel("TCP/1".into()))
        );

        let mut r = ok_report();
        r.families[0].name = "9bad".into();
        assert!(matches!(
            validate(&r),
            Err(ValidationError::BadMetricName { .. })
        ));

        let mut r = ok_report();
        r.families[0].label_names = vec!["le".into()];
        assert!(matches!(
            validate(&r),
            Err(ValidationError::BadLabelName { .. })
        ));

        let mut r = ok_report();
        r.families[0].series[0].bucket_counts.pop();
        assert!(matches!(
            validate(&r),
            Err(ValidationError::BucketCount {
                got: 2,
                want: 3,
                ..
            })
        ));

        let mut r = ok_report();
        r.families[0].bounds = vec![5.0, 1.0];
        assert!(matches!(
            validate(&r),
            Err(ValidationError::BadBounds { .. })
        ));

        let mut r = ok_report();
        r.families[0].series[0].label_values.push("x".into());
        assert!(matches!(
            validate(&r),
            Err(ValidationError::LabelCount {
                got: 2,
                want: 1,
                ..
            })
        ));

        let mut r = ok_report();
        r.families[0].kind = MetricKind::Counter as i32;
        r.families[0].series[0].value = f64::NAN;
        assert!(matches!(
            validate(&r),
            Err(ValidationError::BadValue { .. })
        ));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn label_references_must_stay_inside_the_string_table() {
        let mut r = ok_report();
        r.strings = vec!["source".into()];
        let s = &mut r.families[0].series[0];
        s.label_values.clear();
        s.label_refs = vec![0];
        assert_eq!(validate(&r), Ok(()));
        r.families[0].series[0].label_refs = vec![1];
        assert!(matches!(
            validate(&r),
            Err(ValidationError::LabelRef {
                index: 1,
                strings: 1,
                ..
            })
        ));
        r.families[0].series[0].label_refs = vec![0, 0];
        assert!(matches!(
            validate(&r),
            Err(ValidationError::LabelCount {
                got: 2,
                want: 1,
                ..
            })
        ));
        r.families[0].series[0].label_refs = vec![0];
        r.families[0].series[0].label_values = vec!["source".into()];
        assert!(matches!(
            validate(&r),
            Err(ValidationError::MixedLabelForms { .. })
        ));
    }
}
