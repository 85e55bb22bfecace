//! Accounting of the file tailer and its Prometheus text rendering on `/metrics`.
//!
//! Owns the `meshtap_sink_tail_*` metric names; the tailer only bumps the atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::file::ReadStats;
use crate::ops::metrics::{header, MetricsSection};

/// Counters and gauges of the `log_files` tailer.
#[derive(Debug, Default)]
pub struct TailMetrics {
    pub files_tailed: AtomicU64,
    pub bytes_read: AtomicU64,
    pub lines_read: AtomicU64,
    /// Lines that were not CRI lines (skipped).
    pub malformed_lines: AtomicU64,
    /// Joined lines over `log_files.max_line_bytes`, cut.
    pub lines_cut: AtomicU64,
    /// Files that shrank below the read offset (copytruncate), or below their acknowledged
    /// offset while the sink was stopped: re-read from the start.
    pub truncations: AtomicU64,
    /// Files released after a rename or deletion, once read to their end.
    pub files_released: AtomicU64,
    pub positions_writes: AtomicU64,
    pub positions_write_errors: AtomicU64,
    /// Tailed files rotated away that a restart could not find again (deleted by the kubelet,
    /// or not recognisable): their unacknowledged lines are lost.
    pub rotated_files_lost: AtomicU64,
}

impl TailMetrics {
    /// Counts one read of a file.
    pub fn count_read(&self, stats: &ReadStats) {
        self.bytes_read.fetch_add(stats.bytes, Ordering::Relaxed);
        self.lines_read.fetch_add(stats.lines, Ordering::Relaxed);
        self.malformed_lines
            .fetch_add(stats.malformed, Ordering::Relaxed);
        if stats.truncated {
            self.truncations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One family of the tailer: name, TYPE, HELP, and its atomic.
type TailFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TailMetrics) -> &AtomicU64,
);

const FAMILIES: [TailFamily; 10] = [
        (
            "meshtap_sink_tail_files",
            "gauge",
            "Container-log files being tailed.",
            |m| &m.files_tailed,
        ),
        (
            "meshtap_sink_tail_bytes_read_total",
            "counter",
            "Bytes of complete lines read.",
            |m| &m.bytes_read,
        ),
        (
            "meshtap_sink_tail_lines_read_total",
            "counter",
            "CRI lines read (before joining P chunks).",
            |m| &m.lines_read,
        ),
        (
            "meshtap_sink_tail_malformed_lines_total",
            "counter",
            "Lines that are not CRI lines (skipped).",
            |m| &m.malformed_lines,
        ),
        (
            "meshtap_sink_tail_lines_cut_total",
            "counter",
            "Joined lines cut to log_files.max_line_bytes.",
            |m| &m.lines_cut,
        ),
        (
            "meshtap_sink_tail_truncations_total",
            "counter",
            "Files found shorter than the read offset (copytruncate) or than their acknowledged offset at a restart, re-read from the start (lines not read before the truncation are lost).",
            |m| &m.truncations,
        ),
        (
            "meshtap_sink_tail_files_released_total",
            "counter",
            "Rotated or deleted files released after being read to their end.",
            |m| &m.files_released,
        ),
        (
            "meshtap_sink_tail_positions_writes_total",
            "counter",
            "Positions file rewrites (files being tailed, their read and acknowledged offsets).",
            |m| &m.positions_writes,
        ),
        (
            "meshtap_sink_tail_positions_write_errors_total",
            "counter",
            "Positions file rewrites that failed.",
            |m| &m.positions_write_errors,
        ),
        (
            "meshtap_sink_tail_rotated_files_lost_total",
            "counter",
            "Tailed files rotated away and not found again after a restart (their unacknowledged lines are lost).",
            |m| &m.rotated_files_lost,
        ),
];

impl MetricsSection for TailMetrics {
    fn render(&self, out: &mut String) {
        for (name, kind, help, value) in FAMILIES {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value(self).load(Ordering::Relaxed));
        }
    }
}
