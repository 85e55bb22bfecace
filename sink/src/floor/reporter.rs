//! Who reported: a pod as a report's body or a scrape target names it, and a reporter (a pod's
//! filter on one channel).
//!
//! Owns the keys only; ordering, staleness and self-metrics per reporter belong to the stages
//! that key their state by them.

use std::fmt;

/// A pod: `(namespace, pod)` from a report's body or a scrape target's labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub pod: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>) -> PodKey {
        PodKey {
            namespace: namespace.into(),
            pod: pod.into(),
        }
    }
}

/// One reporter: a pod's HTTP filter (channel `""`, `meshtap_report::CHANNEL_HTTP`) or another
/// of its plugins (`Report.channel`), which reports apart: own lifetime, sequence and series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReporterKey {
    pub pod: PodKey,
    pub channel: String,
}

impl ReporterKey {
    /// The `channel` label value of the reporter's self-metrics: `http` for the HTTP filter.
    pub fn channel_label(&self) -> &str {
        if self.channel.is_empty() {
            "http"
        } else {
            &self.channel
        }
    }
}

/// `<namespace>/<pod>`, with `/<channel>` for a channel other than HTTP (for logs).
impl fmt::Display for ReporterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pod.namespace, self.pod.pod)?;
        if !self.channel.is_empty() {
            write!(f, "/{}", self.channel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_channel_is_labelled_http_and_others_by_name() {
        let http = ReporterKey {
            pod: PodKey::new("ns", "p"),
            channel: String::new(),
        };
        let network = ReporterKey {
            pod: PodKey::new("ns", "p"),
            channel: "network".into(),
        };
        assert_eq!(http.channel_label(), "http");
        assert_eq!(network.channel_label(), "network");
        assert_eq!(http.to_string(), "ns/p");
        assert_eq!(network.to_string(), "ns/p/network");
        assert_ne!(http, network);
    }
}
