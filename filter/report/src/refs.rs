//! Resolving the reference form of label values (`Series.label_refs` into `Report.strings`)
//! into the inline form (`Series.label_values`), so consumers of a decoded report see one form.
//!
//! It only moves strings; the checks are [`crate::validate::check_label_refs`]'s.

use crate::proto::Report;
use crate::validate::{check_label_refs, ValidationError};

/// Bytes that resolving the references adds, counted as the inline form would carry them on the
/// wire: each referenced value's length plus two (its field tag and a short length). Used to
/// bound decoding before anything is copied; references outside the table count two bytes
/// (resolving refuses them anyway).
pub fn inline_growth(report: &Report) -> usize {
    report
        .families
        .iter()
        .flat_map(|f| &f.series)
        .flat_map(|s| &s.label_refs)
        .map(|r| report.strings.get(*r as usize).map_or(0, String::len) + 2)
        .fold(0usize, usize::saturating_add)
}

/// Replaces every series' label references by the strings they point at and empties the string
/// table. Fails, leaving the report unusable, on a reference outside the table or a series that
/// mixes both forms.
pub fn resolve_label_refs(report: &mut Report) -> Result<(), ValidationError> {
    for fam in &report.families {
        for (index, series) in fam.series.iter().enumerate() {
            if !series.label_refs.is_empty() {
                check_label_refs(report, &fam.name, index, series)?;
            }
        }
    }
    let strings = std::mem::take(&mut report.strings);
    for series in report.families.iter_mut().flat_map(|f| f.series.iter_mut()) {
        if series.label_refs.is_empty() {
            continue;
        }
        series.label_values = series
            .label_refs
            .iter()
            .map(|r| strings[*r as usize].clone())
            .collect();
        series.label_refs = Vec::new();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MetricFamily, Series};

    fn with_refs(refs: Vec<u32>, values: Vec<String>) -> Report {
        Report {
            strings: vec!["source".into(), "".into(), "200".into()],
            families: vec![MetricFamily {
                name: "istio_requests_total".into(),
                label_names: vec!["reporter".into(), "v".into(), "response_code".into()],
                series: vec![
                    Series {
                        label_refs: refs,
                        label_values: values,
                        value: 3.0,
                        ..Default::default()
                    },
                    Series {
                        label_values: vec!["a".into(), "b".into(), "c".into()],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn resolves_references_and_keeps_inline_values() {
        let mut r = with_refs(vec![0, 1, 2], vec![]);
        resolve_label_refs(&mut r).unwrap();
        let series = &r.families[0].series;
        assert_eq!(series[0].label_values, ["source", "", "200"]);
        assert!(series[0].label_refs.is_empty());
        assert_eq!(series[1].label_values, ["a", "b", "c"]);
        assert!(r.strings.is_empty());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn refuses_out_of_range_and_mixed_series() {
        let mut r = with_refs(vec![0, 3, 2], vec![]);
        assert!(matches!(
            resolve_label_refs(&mut r),
            Err(ValidationError::LabelRef { index: 3, .. })
        ));
        let mut r = with_refs(vec![0, 1, 2], vec!["x".into()]);
        assert!(matches!(
            resolve_label_refs(&mut r),
            Err(ValidationError::MixedLabelForms { .. })
        ));
    }
}
