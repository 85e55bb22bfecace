//! The ambient part of the scenario format: which data plane a namespace or workload uses
//! (`istio.io/dataplane-mode`: sidecar, ambient or none), the waypoints (Gateways of class
//! `istio-waypoint`) and which services they serve (`istio.io/use-waypoint` on a namespace or on
//! one workload's Service), and where pods run (`node`, one ztunnel per node).
//!
//! Parsing and validation only; the routes calls take are `route.rs`'s business.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::scenario::{Call, Scenario, ScenarioError};

/// How a pod joins the mesh.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Dataplane {
    /// An injected Envoy sidecar.
    #[default]
    Sidecar,
    /// Captured by its node's ztunnel (`istio.io/dataplane-mode=ambient`).
    Ambient,
    /// Not in the mesh.
    None,
}

/// A namespace's labels.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    /// Default data plane of the namespace's workloads.
    #[serde(default)]
    pub dataplane: Dataplane,
    /// `istio.io/use-waypoint`: the waypoint (in this namespace) every service here uses.
    #[serde(default)]
    pub waypoint: Option<String>,
}

/// A waypoint: the Deployment Istio creates for a Gateway of class `istio-waypoint`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waypoint {
    /// The Gateway's name (also the Deployment's and its service account's).
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Node the waypoint pod runs on; defaults to the first node.
    #[serde(default)]
    pub node: Option<String>,
    /// Pod IP; defaults to `10.1.1.<index + 10>`.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default = "default_waypoint_workers")]
    pub workers: usize,
}

/// The node of workloads and waypoints that do not name one.
pub const DEFAULT_NODE: &str = "node-1";

fn default_namespace() -> String {
    "default".into()
}

fn default_waypoint_workers() -> usize {
    1
}

impl Scenario {
    /// The data plane of workload `name`: its own `dataplane`, else `none` for `sidecar: false`,
    /// else its namespace's.
    pub fn dataplane_of(&self, name: &str) -> Dataplane {
        let Some(w) = self.workload(name) else {
            return Dataplane::None;
        };
        if let Some(dataplane) = w.dataplane {
            return dataplane;
        }
        if !w.sidecar {
            return Dataplane::None;
        }
        self.namespace(&w.namespace)
            .map_or(Dataplane::Sidecar, |ns| ns.dataplane)
    }

    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|ns| ns.name == name)
    }

    /// The waypoint serving workload `name`'s service: its own (service-attached), else its
    /// namespace's; only for ambient workloads.
    pub fn waypoint_of(&self, name: &str) -> Option<&Waypoint> {
        let w = self.workload(name)?;
        if self.dataplane_of(name) != Dataplane::Ambient {
            return None;
        }
        let gateway = w
            .waypoint
            .as_deref()
            .or_else(|| self.namespace(&w.namespace)?.waypoint.as_deref())?;
        self.waypoints
            .iter()
            .find(|wp| wp.name == gateway && wp.namespace == w.namespace)
    }

    /// Checks namespaces, waypoints and the calls that cross data planes.
    pub(super) fn validate_ambient(&self) -> Result<(), ScenarioError> {
        let invalid = |m: String| Err(ScenarioError::Invalid(m));
        let mut namespaces = BTreeSet::new();
        for ns in &self.namespaces {
            if !namespaces.insert(&ns.name) {
                return invalid(format!("namespace {:?} is listed twice", ns.name));
            }
            if let Some(gateway) = &ns.waypoint {
                if !self.has_waypoint(gateway, &ns.name) {
                    return invalid(format!(
                        "namespace {:?} uses waypoint {gateway:?}, which is not in it",
                        ns.name
                    ));
                }
            }
        }
        let mut waypoints = BTreeSet::new();
        for wp in &self.waypoints {
            if !waypoints.insert((&wp.namespace, &wp.name)) || wp.workers == 0 {
                return invalid(format!(
                    "waypoint {}/{} is listed twice or has no worker",
                    wp.namespace, wp.name
                ));
            }
        }
        for w in &self.workloads {
            if let Some(gateway) = &w.waypoint {
                if self.dataplane_of(&w.name) != Dataplane::Ambient
                    || !self.has_waypoint(gateway, &w.namespace)
                {
                    return invalid(format!(
                        "workload {:?}: waypoint {gateway:?} needs an ambient workload and a \
                         waypoint in its namespace",
                        w.name
                    ));
                }
            }
        }
        for (i, call) in self.calls.iter().enumerate() {
            self.validate_crossing(i, call)?;
        }
        Ok(())
    }

    fn has_waypoint(&self, name: &str, namespace: &str) -> bool {
        self.waypoints
            .iter()
            .any(|wp| wp.name == name && wp.namespace == namespace)
    }

    /// The routes the simulator does not model.
    fn validate_crossing(&self, i: usize, call: &Call) -> Result<(), ScenarioError> {
        let what = format!("call #{i} from {:?}", call.from);
        let from = self.dataplane_of(&call.from);
        if from == Dataplane::Ambient && call.external.is_some() {
            return Err(ScenarioError::Invalid(format!(
                "{what}: an ambient workload calling an external host is not simulated"
            )));
        }
        let waypoint = call.to.as_deref().and_then(|to| self.waypoint_of(to));
        if waypoint.is_some() && from == Dataplane::Sidecar {
            return Err(ScenarioError::Invalid(format!(
                "{what}: a sidecar calling a service behind a waypoint is not simulated"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = "
namespaces:
  - {name: store, dataplane: ambient, waypoint: waypoint}
waypoints:
  - {name: waypoint, namespace: store}
  - {name: own, namespace: store}
workloads:
  - {name: web, namespace: shop, app: web}
  - {name: cart, namespace: store, app: cart}
  - {name: catalog, namespace: store, app: catalog, waypoint: own}
  - {name: legacy, namespace: store, app: legacy, dataplane: none}
  - {name: old, namespace: shop, app: old, sidecar: false}
calls:
  - {from: cart, to: catalog, count: 1}
";

    #[test]
    fn data_planes_and_waypoints_resolve_from_workload_then_namespace() {
        let s = Scenario::from_yaml(MESH).unwrap();
        let planes: Vec<Dataplane> = ["web", "cart", "legacy", "old"]
            .iter()
            .map(|w| s.dataplane_of(w))
            .collect();
        use Dataplane::*;
        assert_eq!(planes, [Sidecar, Ambient, None, None]);
        assert_eq!(
            s.waypoint_of("cart").map(|w| w.name.as_str()),
            Some("waypoint")
        );
        assert_eq!(
            s.waypoint_of("catalog").map(|w| w.name.as_str()),
            Some("own")
        );
        assert!(s.waypoint_of("legacy").is_none() && s.waypoint_of("web").is_none());
    }

    #[test]
    fn routes_the_simulator_does_not_model_are_refused() {
        let refused = |yaml: String| match Scenario::from_yaml(&yaml) {
            Err(ScenarioError::Invalid(message)) => message,
            other => panic!("accepted: {other:?}"),
        };
        let sidecar_to_waypoint =
            MESH.replace("{from: cart, to: catalog", "{from: web, to: catalog");
        assert!(refused(sidecar_to_waypoint).contains("behind a waypoint"));
        let external = MESH.replace("to: catalog, count: 1", "external: x.example.com, count: 1");
        assert!(refused(external).contains("external host"));
        let elsewhere = MESH.replace("waypoint: own}", "waypoint: nowhere}");
        assert!(refused(elsewhere).contains("waypoint \"nowhere\""));
        let on_sidecar = MESH.replace(
            "{name: web, namespace: shop, app: web}",
            "{name: web, namespace: shop, app: web, waypoint: own}",
        );
        assert!(refused(on_sidecar).contains("needs an ambient workload"));
        // A pod outside the mesh goes straight to the pod, without the waypoint.
        let from_outside = MESH.replace("{from: cart, to: catalog", "{from: old, to: catalog");
        assert!(Scenario::from_yaml(&from_outside).is_ok());
    }
}
