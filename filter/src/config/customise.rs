//! The Telemetry-API-style sections of `pluginConfig`: `overrides` (`metric`, `drop`,
//! `tags_to_remove`, `tags`), `label_limits` and `histogram_buckets`.
//!
//! Owns their checks and their translation into the [`FilterConfig`](super::FilterConfig) fields
//! (tags to remove per family, [`Dimensions`], label caps by stored position,
//! [`HistogramBounds`]). It must not apply them: recording and reporting do.

use std::collections::BTreeMap;
use std::fmt;

use meshtap_report::schema::{
    HTTP_LABELS, PEER_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, REQUEST_MESSAGES,
    RESPONSE_BYTES, RESPONSE_MESSAGES, TCP_CLOSED, TCP_LABELS, TCP_OPENED, TCP_RECEIVED_BYTES,
    TCP_SENT_BYTES,
};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{ConfigError, EnabledMetrics};
use crate::record::dimensions::{Dimensions, REQUEST_FAMILIES};
use crate::store::buckets::{Bounds, HistogramBounds};

/// The `histogram_buckets` key that sets every request histogram (Istio's stat prefix).
pub(super) const ALL_HISTOGRAMS: &str = "istiocustom";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    metric: String,
    tags_to_remove: Option<Vec<String>>,
    tags: Option<OrderedTags>,
    drop: Option<bool>,
}

/// `tags`: label name → expression, in the order written (a new label is appended in that
/// order); a name given twice is refused.
struct OrderedTags(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedTags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;
        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = OrderedTags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of label name to value expression")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedTags, A::Error> {
                let mut tags: Vec<(String, String)> = Vec::new();
                while let Some((name, expression)) = map.next_entry::<String, String>()? {
                    if tags.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "label {name:?} is given twice"
                        )));
                    }
                    tags.push((name, expression));
                }
                Ok(OrderedTags(tags))
            }
        }
        deserializer.deserialize_map(TagsVisitor)
    }
}

/// A family name, its label names and its enable flag.
type Family = (
    &'static str,
    &'static [&'static str],
    fn(&mut EnabledMetrics) -> &mut bool,
);

/// Every family a proxy reports (except `istio_build`).
fn families() -> [Family; 10] {
    [
        (REQUESTS_TOTAL, &HTTP_LABELS, |m| &mut m.requests_total),
        (REQUEST_DURATION, &HTTP_LABELS, |m| &mut m.request_duration),
        (REQUEST_BYTES, &HTTP_LABELS, |m| &mut m.request_bytes),
        (RESPONSE_BYTES, &HTTP_LABELS, |m| &mut m.response_bytes),
        (REQUEST_MESSAGES, &PEER_LABELS, |m| &mut m.request_messages),
        (RESPONSE_MESSAGES, &PEER_LABELS, |m| {
            &mut m.response_messages
        }),
        (TCP_OPENED, &TCP_LABELS, |m| &mut m.tcp_connections_opened),
        (TCP_CLOSED, &TCP_LABELS, |m| &mut m.tcp_connections_closed),
        (TCP_SENT_BYTES, &TCP_LABELS, |m| &mut m.tcp_sent_bytes),
        (TCP_RECEIVED_BYTES, &TCP_LABELS, |m| {
            &mut m.tcp_received_bytes
        }),
    ]
}

/// The tags to remove per family name and the extra dimensions.
type Overrides = (Vec<(String, Vec<String>)>, Dimensions);

/// Checks `overrides` (metric `ALL` or a family name; tags the family has; `tags` only on the
/// request families), applies `drop`, and returns the tags to remove per family and the extra
/// dimensions.
pub(super) fn overrides(
    raw: Vec<RawOverride>,
    metrics: &mut EnabledMetrics,
) -> Result<Overrides, ConfigError> {
    let mut removals: Vec<(String, Vec<String>)> = Vec::new();
    let mut dimensions = Dimensions::default();
    for (i, o) in raw.into_iter().enumerate() {
        let chosen = chosen_families(i, &o.metric)?;
        let tags = o.tags_to_remove.unwrap_or_default();
        let upserts = o.tags.map(|t| t.0).unwrap_or_default();
        check_tags(i, &o.metric, &chosen, &tags, &upserts)?;
        for (name, labels, enabled) in chosen {
            if o.drop.unwrap_or(false) {
                *enabled(metrics) = false;
            }
            let own: Vec<String> = tags
                .iter()
                .filter(|t| labels.contains(&t.as_str()))
                .cloned()
                .collect();
            if !own.is_empty() {
                removals.push((name.to_string(), own));
            }
            if upserts.is_empty() || (o.metric == "ALL" && !REQUEST_FAMILIES.contains(&name)) {
                continue;
            }
            add_dimensions(i, name, &upserts, &mut dimensions)?;
        }
    }
    Ok((removals, dimensions))
}

/// The families override `i` names: `ALL`, or the one family of that name.
fn chosen_families(i: usize, metric: &str) -> Result<Vec<Family>, ConfigError> {
    let chosen: Vec<Family> = families()
        .into_iter()
        .filter(|(name, _, _)| metric == "ALL" || metric == *name)
        .collect();
    if chosen.is_empty() {
        return Err(ConfigError::Customisation {
            path: format!("overrides[{i}].metric"),
            problem: format!(
                "{metric:?} is not ALL or one of istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes, istio_response_bytes, istio_request_messages_total, istio_response_messages_total, istio_tcp_connections_opened_total, istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total, istio_tcp_received_bytes_total"
            ),
        });
    }
    Ok(chosen)
}

/// Every tag to remove is a label of a chosen family, and no label is both set and removed.
fn check_tags(
    i: usize,
    metric: &str,
    chosen: &[Family],
    tags: &[String],
    upserts: &[(String, String)],
) -> Result<(), ConfigError> {
    for tag in tags {
        if !chosen
            .iter()
            .any(|(_, labels, _)| labels.contains(&tag.as_str()))
        {
            return Err(ConfigError::Customisation {
                path: format!("overrides[{i}].tags_to_remove"),
                problem: format!("{tag:?} is not a label of {metric}"),
            });
        }
    }
    if let Some((name, _)) = upserts.iter().find(|(n, _)| tags.contains(n)) {
        return Err(ConfigError::Customisation {
            path: format!("overrides[{i}].tags.{name}"),
            problem: "a label cannot be both set and removed by one override".into(),
        });
    }
    Ok(())
}

/// Adds override `i`'s extra dimensions to `family`, which must be a request family.
fn add_dimensions(
    i: usize,
    family: &'static str,
    upserts: &[(String, String)],
    dimensions: &mut Dimensions,
) -> Result<(), ConfigError> {
    if !REQUEST_FAMILIES.contains(&family) {
        return Err(ConfigError::Customisation {
            path: format!("overrides[{i}].tags"),
            problem: format!(
                "extra dimensions apply to the request families only (istio_requests_total, istio_request_duration_milliseconds, istio_request_bytes, istio_response_bytes), not {family}"
            ),
        });
    }
    for (label, expression) in upserts {
        dimensions
            .upsert(family, label, expression)
            .map_err(|problem| ConfigError::Customisation {
                path: format!("overrides[{i}].tags.{label}"),
                problem,
            })?;
    }
    Ok(())
}

/// Checks `label_limits`: a request label name or an extra dimension's name, caps from 1 to
/// 1,000,000; a cap applies to every stored position carrying that name.
pub(super) fn label_caps(
    raw: BTreeMap<String, u64>,
    dimensions: &Dimensions,
) -> Result<Vec<(usize, usize)>, ConfigError> {
    let mut caps = Vec::new();
    for (label, cap) in raw {
        let path = || format!("label_limits.{label}");
        let positions: Vec<usize> = HTTP_LABELS
            .iter()
            .position(|l| *l == label)
            .into_iter()
            .chain(dimensions.positions_named(&label))
            .collect();
        if positions.is_empty() {
            return Err(ConfigError::Customisation {
                path: path(),
                problem: "not one of Istio's request labels nor an extra dimension".into(),
            });
        }
        if !(1..=1_000_000).contains(&cap) {
            return Err(ConfigError::Customisation {
                path: path(),
                problem: "the cap must be between 1 and 1000000".into(),
            });
        }
        caps.extend(positions.into_iter().map(|p| (p, cap as usize)));
    }
    Ok(caps)
}

/// Checks `histogram_buckets`: keys `istiocustom` (every request histogram) or a histogram
/// family's name (which beats `istiocustom`), each a valid bound list.
pub(super) fn histogram_bounds(
    raw: BTreeMap<String, Vec<f64>>,
) -> Result<HistogramBounds, ConfigError> {
    let names = [REQUEST_DURATION, REQUEST_BYTES, RESPONSE_BYTES];
    let mut checked: BTreeMap<&str, Bounds> = BTreeMap::new();
    for (key, bounds) in &raw {
        let path = || format!("histogram_buckets.{key}");
        if key != ALL_HISTOGRAMS && !names.contains(&key.as_str()) {
            return Err(ConfigError::Customisation {
                path: path(),
                problem: format!(
                    "not {ALL_HISTOGRAMS} nor one of {REQUEST_DURATION}, {REQUEST_BYTES}, {RESPONSE_BYTES}"
                ),
            });
        }
        let bounds = Bounds::new(bounds).map_err(|e| ConfigError::Customisation {
            path: path(),
            problem: e.to_string(),
        })?;
        checked.insert(key, bounds);
    }
    let of = |name: &str| {
        checked
            .get(name)
            .or_else(|| checked.get(ALL_HISTOGRAMS))
            .cloned()
            .unwrap_or_default()
    };
    Ok(HistogramBounds(names.map(of)))
}
