//! [`ViewTap`]: how ingest, the scrape loops and the file tailer tell the view what they saw.
//! Those stages hold a tap and never the view itself.
//!
//! Owns the translation of what a stage has at hand (a report and its samples, a scrape's
//! samples, a tailed entry) into the view's sources and log lines. Each call is cheap and
//! never blocks on I/O; it must not change what the stage exports.

use std::sync::Arc;

use meshtap_logformat::access::{render_access_log, AccessLogEncoding};
use meshtap_logformat::cri::PodLogPath;
use meshtap_logformat::loki::LogEntry;
use meshtap_report::Report;

use super::log_ring::{service_of, tailed_line, LogLine, LogOrigin};
use super::store::SourceId;
use super::LiveView;
use crate::export::loki::records::access_record;
use crate::floor::ReporterKey;
use meshtap_remotewrite::sample::ExportSample;
use meshtap_remotewrite::series::Sample;

/// A handle on the view for the stages that feed it.
#[derive(Clone)]
pub struct ViewTap(Arc<LiveView>);

impl ViewTap {
    pub fn new(view: Arc<LiveView>) -> ViewTap {
        ViewTap(view)
    }

    /// An accepted report: `samples` are what ingest exports of it (after the scrape merge
    /// rule), its access-log records become log lines.
    pub fn report(&self, reporter: &ReporterKey, report: &Report, samples: &[Sample]) {
        self.0.record_report(
            SourceId::Reporter(reporter.clone()),
            report.proxy_start_ms,
            report.timestamp_ms,
            samples,
        );
        for record in &report.access_logs {
            let access = access_record(record);
            let service = service_of(
                access.upstream_cluster.as_deref(),
                access.requested_server_name.as_deref(),
                access.authority.as_deref(),
            );
            self.0.push_log(LogLine {
                timestamp_ms: record.start_time_ns / 1_000_000,
                origin: LogOrigin::Filter,
                namespace: reporter.pod.namespace.clone(),
                pod: reporter.pod.pod.clone(),
                service,
                status: Some(record.response_code),
                line: render_access_log(&access, AccessLogEncoding::Text),
            });
        }
    }

    /// A reporter that went silent.
    pub fn reporter_gone(&self, reporter: &ReporterKey) {
        self.0.remove(&SourceId::Reporter(reporter.clone()));
    }

    /// One scrape of the target at `url`: the samples it queues (after the merge rule, `up`
    /// included).
    pub fn scraped(&self, url: &str, scrape_ms: i64, samples: &[ExportSample]) {
        self.0
            .record_scrape(SourceId::Target(url.to_owned()), scrape_ms, samples);
    }

    /// A scrape target that was removed.
    pub fn target_gone(&self, url: &str) {
        self.0.remove(&SourceId::Target(url.to_owned()));
    }

    /// An entry read from the tailed file at `path` (a kubelet pod log path).
    pub fn tailed(&self, path: &str, entry: &LogEntry) {
        let (namespace, pod) = PodLogPath::parse(path).map_or(("", ""), |p| (p.namespace, p.pod));
        self.0.push_log(tailed_line(namespace, pod, entry));
    }
}
