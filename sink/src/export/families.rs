//! The metric families seen so far (name, type, help), for remote-write metadata.
//!
//! Owns the registry and its change signal; sending metadata is each endpoint's job.

use std::collections::BTreeMap;
use std::sync::Mutex;

use meshtap_report::{MetricKind, Report};
use tokio::sync::watch;

/// TYPE and HELP of one family.
#[derive(Clone, Debug, PartialEq)]
pub struct FamilyMeta {
    pub kind: MetricKind,
    pub help: String,
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
        let mut changed = false;
        {
            let mut families = self.families.lock().expect("family registry lock");
            for family in &report.families {
                let meta = FamilyMeta {
                    kind: MetricKind::try_from(family.kind).unwrap_or(MetricKind::Unspecified),
                    help: family.help.clone(),
                };
                if families.get(&family.name) != Some(&meta) {
                    families.insert(family.name.clone(), meta);
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
