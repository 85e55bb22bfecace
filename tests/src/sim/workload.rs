//! A scenario workload with every default applied: names, canonical labels, identity, pod, IP,
//! node and data plane, and what Envoy and Istio's discovery make of it — the sidecar's node
//! metadata, the peer metadata a sidecar's metadata exchange hands its peer, and the workload
//! as a waypoint's or ztunnel's workload discovery (WDS) knows it.
//!
//! Pure values; no VM is run here.

use crate::host::envoy_messages::{PeerWorkload, ServiceRef};
use crate::host::NodeInfo;

use super::ambient::AmbientPeer;
use super::scenario::{Dataplane, MeshSettings, Scenario, DEFAULT_NODE};

/// A workload with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedWorkload {
    pub name: String,
    pub namespace: String,
    pub app: Option<String>,
    pub version: Option<String>,
    pub canonical_service: String,
    pub canonical_revision: String,
    pub cluster: String,
    /// Service FQDN, if a service fronts the workload.
    pub service_host: Option<String>,
    pub port: u16,
    pub workers: usize,
    pub identity: String,
    /// The pod runs an Envoy sidecar (`dataplane == Sidecar`).
    pub sidecar: bool,
    pub dataplane: Dataplane,
    pub pod: String,
    pub ip: String,
    pub node: String,
}

impl ResolvedWorkload {
    /// Workload `index` of `scenario`.
    pub fn resolve(scenario: &Scenario, index: usize) -> ResolvedWorkload {
        let (mesh, w) = (&scenario.mesh, &scenario.workloads[index]);
        let dataplane = scenario.dataplane_of(&w.name);
        let service_host = w.service.clone().or_else(|| {
            w.app
                .as_ref()
                .map(|app| format!("{app}.{}.svc.cluster.local", w.namespace))
        });
        let account = w.app.clone().unwrap_or_else(|| w.name.clone());
        ResolvedWorkload {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            app: w.app.clone(),
            version: w.version.clone(),
            canonical_service: w
                .canonical_service
                .clone()
                .or_else(|| w.app.clone())
                .unwrap_or_else(|| w.name.clone()),
            canonical_revision: w
                .canonical_revision
                .clone()
                .or_else(|| w.version.clone())
                .unwrap_or_else(|| "latest".into()),
            cluster: w.cluster.clone().unwrap_or_else(|| mesh.cluster.clone()),
            service_host,
            port: w.port,
            workers: w.workers,
            identity: w.identity.clone().unwrap_or_else(|| {
                format!(
                    "spiffe://{}/ns/{}/sa/{account}",
                    mesh.trust_domain, w.namespace
                )
            }),
            sidecar: dataplane == Dataplane::Sidecar,
            dataplane,
            pod: w.pod.clone().unwrap_or_else(|| {
                format!(
                    "{}-{:x}-{:05x}",
                    w.name,
                    0x5f00 + index,
                    index * 7919 + 4242
                )
            }),
            ip: w
                .ip
                .clone()
                .unwrap_or_else(|| format!("10.1.0.{}", index + 10)),
            node: w.node.clone().unwrap_or_else(|| DEFAULT_NODE.into()),
        }
    }

    /// Every workload of `scenario`, resolved.
    pub fn resolve_all(scenario: &Scenario) -> Vec<ResolvedWorkload> {
        scenario
            .workloads
            .iter()
            .enumerate()
            .map(|(i, _)| ResolvedWorkload::resolve(scenario, i))
            .collect()
    }

    /// `<name>` of the service host (up to its first dot).
    pub fn service_name(&self) -> Option<&str> {
        self.service_host
            .as_deref()
            .map(|h| h.split('.').next().unwrap_or(h))
    }

    /// Namespace of the service host (`name.ns.svc...`), else the workload's namespace.
    pub fn service_namespace(&self) -> &str {
        self.service_host
            .as_deref()
            .and_then(|h| h.split('.').nth(1))
            .unwrap_or(&self.namespace)
    }

    /// Envoy's node identity for this workload's sidecar.
    pub fn node(&self, mesh: &MeshSettings) -> NodeInfo {
        let mut node = NodeInfo {
            id: format!(
                "sidecar~{}~{}.{}~{}.svc.cluster.local",
                self.ip, self.pod, self.namespace, self.namespace
            ),
            ..NodeInfo::default()
        };
        for (key, value) in [
            ("WORKLOAD_NAME", self.name.as_str()),
            ("NAMESPACE", &self.namespace),
            ("NAME", &self.pod),
            ("CLUSTER_ID", &self.cluster),
            ("ISTIO_VERSION", &mesh.istio_version),
            ("MESH_ID", &mesh.mesh_id),
            ("INSTANCE_IPS", &self.ip),
        ] {
            node.metadata.insert(key.into(), value.into());
        }
        if let Some(app) = &self.app {
            node.labels.insert("app".into(), app.clone());
        }
        if let Some(version) = &self.version {
            node.labels.insert("version".into(), version.clone());
        }
        node.labels.insert(
            "service.istio.io/canonical-name".into(),
            self.canonical_service.clone(),
        );
        node.labels.insert(
            "service.istio.io/canonical-revision".into(),
            self.canonical_revision.clone(),
        );
        node
    }

    pub fn ambient(&self) -> bool {
        self.dataplane == Dataplane::Ambient
    }

    /// This workload as a sidecar's metadata exchange hands it to its peer. No `identity`:
    /// Istio's `convertStructToWorkloadMetadata` (istio/proxy `extensions/common/metadata_object.cc`)
    /// passes an empty identity for exchanged peers, so principals come from certificates only.
    pub fn peer(&self) -> PeerWorkload {
        PeerWorkload {
            name: self.pod.clone(),
            namespace: self.namespace.clone(),
            workload: self.name.clone(),
            workload_type: "deployment".into(),
            cluster: self.cluster.clone(),
            service: self.canonical_service.clone(),
            revision: self.canonical_revision.clone(),
            app: self.app.clone().unwrap_or_default(),
            version: self.version.clone().unwrap_or_default(),
            identity: String::new(),
        }
    }

    /// This workload as a waypoint's workload discovery converts it (istio/proxy
    /// `workload_discovery/api.cc` `convert`): app and version are the canonical name and
    /// revision, the identity is computed from namespace and service account.
    pub fn wds_peer(&self) -> PeerWorkload {
        PeerWorkload {
            app: self.canonical_service.clone(),
            version: self.canonical_revision.clone(),
            identity: self.identity.clone(),
            ..self.peer()
        }
    }

    /// This workload as ztunnel's workload discovery knows it.
    pub fn ambient_peer(&self) -> AmbientPeer {
        AmbientPeer {
            workload: self.name.clone(),
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            canonical_service: self.canonical_service.clone(),
            canonical_revision: self.canonical_revision.clone(),
            identity: self.identity.clone(),
            cluster: self.cluster.clone(),
            ip: self.ip.clone(),
            region: String::new(),
            zone: String::new(),
        }
    }

    pub(super) fn service_ref(&self) -> Option<ServiceRef> {
        Some(ServiceRef {
            host: self.service_host.clone()?,
            name: self.service_name()?.to_string(),
            namespace: self.service_namespace().to_string(),
        })
    }
}
