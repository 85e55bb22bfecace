//! Checks one rendered object against its type: Kubernetes kinds through `k8s-openapi` (parsed
//! and serialised back, so a key the type does not know shows up as a difference), Istio kinds
//! through the `deny_unknown_fields` structs of `istio_crds`. A kind not listed here is an error.

use k8s_openapi::api::{apps, core, policy, rbac};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::istio_crds::*;
use super::kustomize::Object;

/// Parses `value` as `T` and checks nothing was dropped: serialising it back gives the same JSON.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Object) -> Result<(), String> {
    let typed: T = serde_json::from_value(object.value.clone())
        .map_err(|e| format!("{}: {e}", object.key()))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if back != object.value {
        return Err(format!(
            "{} ({}): unknown or misplaced fields; as {} it reads\n{}\ninstead of\n{}",
            object.key(),
            object.source.display(),
            std::any::type_name::<T>(),
            serde_json::to_string_pretty(&back).unwrap(),
            serde_json::to_string_pretty(&object.value).unwrap()
        ));
    }
    Ok(())
}

pub fn istio<Spec: DeserializeOwned>(object: &Object) -> Result<Resource<Spec>, String> {
    serde_json::from_value(object.value.clone()).map_err(|e| format!("{}: {e}", object.key()))
}

/// Checks one object against its type; every kind meshtap ships must be listed here.
pub fn check_typed(object: &Object) -> Result<(), String> {
    match (object.api_version(), object.kind()) {
        ("v1", "Namespace") => round_trip::<core::v1::Namespace>(object),
        ("v1", "ServiceAccount") => round_trip::<core::v1::ServiceAccount>(object),
        ("v1", "ConfigMap") => round_trip::<core::v1::ConfigMap>(object),
        ("v1", "Secret") => round_trip::<core::v1::Secret>(object),
        ("v1", "Service") => round_trip::<core::v1::Service>(object),
        ("apps/v1", "Deployment") => round_trip::<apps::v1::Deployment>(object),
        ("apps/v1", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(object),
        ("policy/v1", "PodDisruptionBudget") => {
            round_trip::<policy::v1::PodDisruptionBudget>(object)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            round_trip::<rbac::v1::ClusterRole>(object)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(object)
        }
        ("extensions.istio.io/v1alpha1", "WasmPlugin") => istio::<WasmPluginSpec>(object).map(drop),
        ("telemetry.istio.io/v1", "Telemetry") => istio::<TelemetrySpec>(object).map(drop),
        ("networking.istio.io/v1", "DestinationRule") => {
            istio::<DestinationRuleSpec>(object).map(drop)
        }
        ("security.istio.io/v1", "AuthorizationPolicy") => {
            istio::<AuthorizationPolicySpec>(object).map(drop)
        }
        (api, kind) => Err(format!(
            "{}: {api} {kind} is not a kind these tests know",
            object.key()
        )),
    }
}
