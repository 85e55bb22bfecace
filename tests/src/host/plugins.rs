//! Plugins (root contexts) inside one worker VM. Envoy gives every plugin that loads the same
//! module with the same VM configuration its own root context in the shared VM: its own
//! `root_id`, plugin configuration, start sequence and tick period, while memory and the
//! vm_id's shared data are common.
//!
//! Describes plugins and keeps each root's host-side state; running callbacks is `vm.rs`'s job.

use std::time::Duration;

use super::properties::{Phase, Properties};

/// Which traffic a plugin's root context handles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Traffic {
    /// HTTP filter: HTTP streams go to this root (WasmPlugin `type: HTTP`, the default).
    #[default]
    Http,
    /// Network filter: TCP connections go to this root (WasmPlugin `type: NETWORK`).
    Network,
}

/// A further plugin started as an additional root context in every worker VM.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    pub root_id: String,
    pub plugin_name: String,
    /// The plugin's `pluginConfig`, as JSON text.
    pub plugin_config: String,
    pub traffic: Traffic,
}

/// The host side of one root context.
#[derive(Debug)]
pub struct RootState {
    /// Context id of the root (0 until the VM starts it).
    pub context: u32,
    pub root_id: String,
    pub traffic: Traffic,
    pub plugin_config: Vec<u8>,
    /// `plugin_root_id` and `plugin_name`, as this root's contexts see them.
    pub properties: Properties,
    pub tick_period: Option<Duration>,
    pub next_tick_nanos: u64,
    /// Why Envoy does not use this plugin (`on_vm_start`/`on_configure` returned false).
    pub rejected: Option<String>,
}

impl RootState {
    /// A root not started yet.
    pub fn new(spec: &PluginSpec) -> RootState {
        let mut properties = Properties::new();
        properties.set_string(&["plugin_root_id"], &spec.root_id, Phase::Request);
        properties.set_string(&["plugin_name"], &spec.plugin_name, Phase::Request);
        RootState {
            context: 0,
            root_id: spec.root_id.clone(),
            traffic: spec.traffic,
            plugin_config: spec.plugin_config.as_bytes().to_vec(),
            properties,
            tick_period: None,
            next_tick_nanos: 0,
            rejected: None,
        }
    }

    /// The time (ns since epoch) of this root's next tick, if it has a tick period.
    pub fn next_tick(&self) -> Option<u64> {
        (self.rejected.is_none() && self.tick_period.is_some()).then_some(self.next_tick_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::properties::path_key;

    #[test]
    fn a_root_serves_its_own_identity_and_ticks_only_when_armed() {
        let mut root = RootState::new(&PluginSpec {
            root_id: "meshtap-tcp".into(),
            plugin_name: "meshtap-tcp".into(),
            plugin_config: r#"{"type":"NETWORK"}"#.into(),
            traffic: Traffic::Network,
        });
        assert_eq!(
            root.properties
                .lookup(&path_key(&["plugin_root_id"]), Phase::Request)
                .unwrap(),
            b"meshtap-tcp".to_vec()
        );
        assert_eq!(root.next_tick(), None);
        root.tick_period = Some(Duration::from_secs(1));
        root.next_tick_nanos = 7;
        assert_eq!(root.next_tick(), Some(7));
        root.rejected = Some("configure".into());
        assert_eq!(root.next_tick(), None);
    }
}
