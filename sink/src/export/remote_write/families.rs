//! The metric families seen so far (name, type, help, unit), from reports and scrapes, for
//! remote-write metadata.
//!
//! Owns the registry and its change signal; sending metadata is each endpoint's job.

use std::collections::BTreeMap;
use std::sync::Mutex;

use meshtap_report::{MetricKind, Report};
use tokio::sync::watch;

use meshtap_remotewrite::proto::MetricType;

/// TYPE, HELP and UNIT of one family.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyMeta {
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}

/// The remote-write type of a reported family's kind.
fn reported_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Histogram => MetricType::Histogram,
        MetricKind::Unspecified => MetricType::Unknown,
    }
}

/// Families by name; subscribers are told when a family appears or changes.
pub struct FamilyRegistry {
    families: Mutex<BTreeMap<String, FamilyMeta>>,
    changed: watch::Sender<u64>,
}

impl Default for FamilyRegistry {
    fn default() -> Self {
        FamilyRegistry {
            families: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl FamilyRegistry {
    /// Records the families of a validated report.
    pub fn observe(&self, report: &Report) {
        self.observe_families(report.families.iter().map(|family| {
            let kind = MetricKind::try_from(family.kind).unwrap_or(MetricKind::Unspecified);
            let meta = FamilyMeta {
                kind: reported_type(kind),
                help: family.help.clone(),
                unit: String::new(),
            };
            (family.name.clone(), meta)
        }));
    }

    /// Records families (a scrape's `# TYPE`/`# HELP`/`# UNIT`); the latest wins.
    pub fn observe_families(&self, families: impl IntoIterator<Item = (String, FamilyMeta)>) {
        let mut changed = false;
        {
            let mut known = self.families.lock().expect("family registry lock");
            for (name, meta) in families {
                if known.get(&name) != Some(&meta) {
                    known.insert(name, meta);
                    changed = true;
                }
            }
        }
        if changed {
            self.changed.send_modify(|version| *version += 1);
        }
    }

    /// All families, by name.
    pub fn snapshot(&self) -> Vec<(String, FamilyMeta)> {
        let families = self.families.lock().expect("family registry lock");
        families
            .iter()
            .map(|(name, meta)| (name.clone(), meta.clone()))
            .collect()
    }

    /// A receiver that changes whenever a family appears or changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
