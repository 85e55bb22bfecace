//! The reload counters and gauges, named as Prometheus names its own
//! (`prometheus_config_last_reload_successful`, ...).
//!
//! Owns these metrics and their rendering; it must not decide what a reload does.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::ops::metrics::{header, MetricsSection};

/// Reload outcomes; the config loaded at start counts as the first success time.
#[derive(Debug)]
pub struct ReloadMetrics {
    successes: AtomicU64,
    failures: AtomicU64,
    last_success_ms: AtomicI64,
    last_successful: AtomicBool,
}

impl ReloadMetrics {
    /// Metrics of a sink whose config was loaded at `now_ms`.
    pub fn new(now_ms: i64) -> ReloadMetrics {
        ReloadMetrics {
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_success_ms: AtomicI64::new(now_ms),
            last_successful: AtomicBool::new(true),
        }
    }

    /// Counts a reload's outcome at `now_ms`.
    pub fn record(&self, success: bool, now_ms: i64) {
        if success {
            self.successes.fetch_add(1, Ordering::Relaxed);
            self.last_success_ms.store(now_ms, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.last_successful.store(success, Ordering::Relaxed);
    }
}

impl MetricsSection for ReloadMetrics {
    fn render(&self, out: &mut String) {
        let name = "meshtap_sink_config_reloads_total";
        header(out, name, "counter", "Config reloads, by result.");
        for (result, count) in [("success", &self.successes), ("failure", &self.failures)] {
            let _ = writeln!(
                out,
                "{name}{{result=\"{result}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let name = "meshtap_sink_config_last_reload_successful";
        header(
            out,
            name,
            "gauge",
            "Whether the last config reload succeeded (1 before any).",
        );
        let ok = self.last_successful.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {}", u8::from(ok));
        let name = "meshtap_sink_config_last_reload_success_timestamp_seconds";
        header(
            out,
            name,
            "gauge",
            "When the config was last loaded successfully (start or reload).",
        );
        let ms = self.last_success_ms.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name} {}", ms as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_outcomes_and_the_last_success() {
        let m = ReloadMetrics::new(1_000);
        m.record(true, 5_500);
        m.record(false, 9_000);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("meshtap_sink_config_reloads_total{result=\"success\"} 1\n"));
        assert!(out.contains("meshtap_sink_config_reloads_total{result=\"failure\"} 1\n"));
        assert!(out.contains("meshtap_sink_config_last_reload_successful 0\n"));
        assert!(out.contains("meshtap_sink_config_last_reload_success_timestamp_seconds 5.5\n"));
    }
}
