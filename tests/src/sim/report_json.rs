//! A report as one JSON value with every field, family and series (what
//! `meshtap-sim --print-reports` prints, one line per report).
//!
//! Presentation only.

use meshtap_report::{MetricKind, Report};
use serde_json::{json, Value};

pub fn report_json(report: &Report) -> Value {
    let proxy = report.proxy.clone().unwrap_or_default();
    let stats = report.stats.clone().unwrap_or_default();
    let families: Vec<Value> = report
        .families
        .iter()
        .map(|family| {
            let kind = MetricKind::try_from(family.kind).unwrap_or(MetricKind::Unspecified);
            let series: Vec<Value> = family
                .series
                .iter()
                .map(|s| {
                    let labels: serde_json::Map<String, Value> = family
                        .label_names
                        .iter()
                        .zip(&s.label_values)
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    json!({
                        "labels": labels,
                        "value": s.value,
                        "bucket_counts": s.bucket_counts,
                        "sum": s.sum,
                    })
                })
                .collect();
            json!({
                "name": family.name,
                "kind": format!("{kind:?}").to_lowercase(),
                "help": family.help,
                "label_names": family.label_names,
                "bounds": family.bounds,
                "series": series,
            })
        })
        .collect();
    json!({
        "protocol_version": report.protocol_version,
        "proxy": {
            "namespace": proxy.namespace,
            "pod": proxy.pod,
            "workload": proxy.workload,
            "node_id": proxy.node_id,
            "cluster_id": proxy.cluster_id,
            "istio_version": proxy.istio_version,
            "mesh_id": proxy.mesh_id,
            "filter_version": proxy.filter_version,
            "instance_ips": proxy.instance_ips,
        },
        "proxy_start_ms": report.proxy_start_ms,
        "timestamp_ms": report.timestamp_ms,
        "sequence": report.sequence,
        "interval_ms": report.interval_ms,
        "families": families,
        "stats": {
            "series_active": stats.series_active,
            "series_limit": stats.series_limit,
            "overflow_observations": stats.overflow_observations,
            "worker_vms": stats.worker_vms,
            "retired_vms": stats.retired_vms,
            "reports_failed": stats.reports_failed,
            "series_evicted": stats.series_evicted,
        },
    })
}
