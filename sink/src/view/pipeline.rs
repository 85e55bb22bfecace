//! The sink's own health as the view shows it: per remote-write and Loki endpoint its queue,
//! spool, lag, deliveries and failures, read from the `/metrics` exposition of
//! [`SinkMetrics`] (so the view shows exactly what is exported about the sink).
//!
//! Owns which self-metrics are shown and how they are grouped. It must not bump or reach
//! into the metrics' atomics.

use std::collections::BTreeMap;

use meshtap_textformat::{Event, Parser};
use serde::Serialize;

use crate::ops::metrics::SinkMetrics;

/// One endpoint's row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EndpointHealth {
    pub endpoint: String,
    /// Samples (remote-write) or entries (Loki) queued or in flight.
    pub queued: f64,
    pub spool_bytes: f64,
    /// Age of the oldest unsent sample (remote-write only).
    pub lag_seconds: Option<f64>,
    pub sent: f64,
    /// Refused with a non-retryable answer.
    pub failed: f64,
    pub retried: f64,
    /// Dropped for any reason.
    pub dropped: f64,
}

/// Every endpoint of both exporters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PipelineHealth {
    pub remote_write: Vec<EndpointHealth>,
    pub loki: Vec<EndpointHealth>,
    pub reports_accepted: f64,
    pub reports_refused: f64,
}

/// Adds `value` of a self-metric to the row it belongs to, if the view shows it.
fn apply(row: &mut EndpointHealth, field: &str, value: f64) {
    match field {
        "queue_samples" | "log_queue_entries" => row.queued += value,
        "spool_bytes" | "log_spool_bytes" => row.spool_bytes += value,
        "queue_lag_seconds" => row.lag_seconds = Some(row.lag_seconds.unwrap_or(0.0).max(value)),
        "samples_sent_total" | "log_entries_sent_total" => row.sent += value,
        "samples_failed_total" | "log_entries_refused_total" => row.failed += value,
        "samples_retried_total" | "log_entries_retried_total" => row.retried += value,
        "samples_dropped_total" | "log_entries_dropped_total" => row.dropped += value,
        _ => {}
    }
}

impl PipelineHealth {
    /// Reads the current self-metrics.
    pub fn of(metrics: &SinkMetrics, now_ms: i64) -> PipelineHealth {
        PipelineHealth::of_exposition(&metrics.render(now_ms))
    }

    fn of_exposition(text: &str) -> PipelineHealth {
        let mut remote_write: BTreeMap<String, EndpointHealth> = BTreeMap::new();
        let mut loki: BTreeMap<String, EndpointHealth> = BTreeMap::new();
        let mut health = PipelineHealth::default();
        for event in Parser::for_content_type(text.as_bytes(), None).flatten() {
            let Event::Sample(sample) = event else {
                continue;
            };
            let Some(field) = sample.name.strip_prefix("meshtap_sink_") else {
                continue;
            };
            if field == "reports_total" {
                let accepted = sample
                    .labels
                    .get("result")
                    .is_some_and(|r| r.raw() == "accepted");
                let sum = match accepted {
                    true => &mut health.reports_accepted,
                    false => &mut health.reports_refused,
                };
                *sum += sample.value;
                continue;
            }
            let Some(endpoint) = sample.labels.get("endpoint") else {
                continue;
            };
            let rows = match field.starts_with("log_") {
                true => &mut loki,
                false => &mut remote_write,
            };
            let name = endpoint.unescaped().into_owned();
            let row = rows.entry(name.clone()).or_insert_with(|| EndpointHealth {
                endpoint: name,
                ..EndpointHealth::default()
            });
            apply(row, field, sample.value);
        }
        health.remote_write = remote_write.into_values().collect();
        health.loki = loki.into_values().collect();
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_self_metrics_per_endpoint() {
        let text = "meshtap_sink_reports_total{result=\"accepted\"} 4\n\
            meshtap_sink_reports_total{result=\"invalid\"} 1\n\
            meshtap_sink_queue_samples{endpoint=\"mimir\"} 12\n\
            meshtap_sink_queue_lag_seconds{endpoint=\"mimir\"} 1.5\n\
            meshtap_sink_samples_dropped_total{endpoint=\"mimir\",reason=\"too_old\"} 2\n\
            meshtap_sink_samples_dropped_total{endpoint=\"mimir\",reason=\"queue_full\"} 3\n\
            meshtap_sink_log_entries_sent_total{endpoint=\"loki\"} 7\n\
            meshtap_sink_scrape_targets{job=\"istiod\"} 1\n";
        let health = PipelineHealth::of_exposition(text);
        assert_eq!(
            (health.reports_accepted, health.reports_refused),
            (4.0, 1.0)
        );
        let mimir = &health.remote_write[0];
        assert_eq!(mimir.endpoint, "mimir");
        assert_eq!((mimir.queued, mimir.dropped), (12.0, 5.0));
        assert_eq!(mimir.lag_seconds, Some(1.5));
        assert_eq!(health.loki[0].sent, 7.0);
        assert_eq!(health.remote_write.len() + health.loki.len(), 2);
    }
}
