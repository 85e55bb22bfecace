//! The terminal table of `GET /v1/summary?format=text`.
//!
//! Owns layout only; the numbers come from [`super::LiveView::summary`].

use std::fmt::Write;

use super::Summary;

fn opt(value: Option<f64>, scale: f64, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.*}", decimals, v * scale))
}

/// A fixed-width table, one row per service.
pub fn render_table(summary: &Summary) -> String {
    let width = summary
        .services
        .iter()
        .map(|s| s.service.len())
        .max()
        .unwrap_or(0)
        .max("SERVICE".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<11}  {:>9}  {:>7}  {:>9}  {:>9}  {:>10}  {:>4}",
        "SERVICE", "REPORTER", "REQ/S", "ERR%", "P50(ms)", "P99(ms)", "REQUESTS", "PODS"
    );
    for s in &summary.services {
        let _ = writeln!(
            out,
            "{:<width$}  {:<11}  {:>9.2}  {:>7}  {:>9}  {:>9}  {:>10}  {:>4}",
            s.service,
            s.reporter,
            s.request_rate,
            opt(s.error_rate, 100.0, 1),
            opt(s.p50_ms, 1.0, 1),
            opt(s.p99_ms, 1.0, 1),
            s.requests_total,
            s.pods
        );
    }
    let _ = writeln!(
        out,
        "({} services, rates over the last {}s)",
        summary.services.len(),
        summary.window_seconds
    );
    out
}
