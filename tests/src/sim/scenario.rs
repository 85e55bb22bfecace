//! The YAML scenario format of `meshtap-sim`: workloads, the calls between them, and how they
//! behave (outcome mix, latency, sizes, protocol — HTTP, gRPC with message counts, TCP —, body
//! chunks, mTLS, metadata exchange, the grpc_stats filter).
//!
//! Parsing, defaults and validation only; turning a scenario into proxies and streams is
//! `mesh.rs`'s job. Ambient mode (data planes, waypoints, nodes) is in `scenario_ambient.rs`.
//! The format is documented in `tests/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use super::scenario_ambient::{Dataplane, Namespace, Waypoint, DEFAULT_NODE};

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seeds every random choice (outcome order, latencies, sizes, VM randomness).
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub mesh: MeshSettings,
    /// Filter `pluginConfig` keys, merged over the sim's defaults (JSON object).
    #[serde(default)]
    pub plugin_config: Option<serde_json::Value>,
    /// WasmPlugin `vmConfig.env` for every proxy.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Namespaces' data plane and waypoint (absent: sidecar mode, no waypoint).
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Waypoints of ambient namespaces.
    #[serde(default)]
    pub waypoints: Vec<Waypoint>,
    pub workloads: Vec<Workload>,
    pub calls: Vec<Call>,
}

/// Mesh-wide defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshSettings {
    pub trust_domain: String,
    pub mesh_id: String,
    pub istio_version: String,
    /// Default `CLUSTER_ID` of workloads.
    pub cluster: String,
    /// Default for calls that do not say.
    pub mtls: bool,
    /// Default metadata exchange of calls.
    pub exchange: Exchange,
    /// Envoy's grpc_stats filter with `emit_filter_state` on every sidecar (default for calls).
    pub grpc_stats: bool,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            trust_domain: "cluster.local".into(),
            mesh_id: "cluster.local".into(),
            istio_version: "1.24.2".into(),
            cluster: "Kubernetes".into(),
            mtls: true,
            exchange: Exchange::FilterState,
            grpc_stats: true,
        }
    }
}

/// One workload (a Deployment); each has one proxy (pod) unless `sidecar: false`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The `app` label; absent means no such pod label.
    #[serde(default)]
    pub app: Option<String>,
    /// The `version` label; absent means no such pod label.
    #[serde(default)]
    pub version: Option<String>,
    /// `service.istio.io/canonical-name`; defaults to `app`, else the workload name (as the
    /// injector does).
    #[serde(default)]
    pub canonical_service: Option<String>,
    /// `service.istio.io/canonical-revision`; defaults to `version`, else `latest`.
    #[serde(default)]
    pub canonical_revision: Option<String>,
    #[serde(default)]
    pub cluster: Option<String>,
    /// The service host in front of it (FQDN); defaults to `<app>.<namespace>.svc.cluster.local`
    /// when `app` is set.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// SPIFFE identity; defaults to `spiffe://<trust_domain>/ns/<ns>/sa/<app or name>`.
    #[serde(default)]
    pub identity: Option<String>,
    /// `false` for a workload without an Istio sidecar (no proxy, no peer metadata, no mTLS).
    #[serde(default = "default_true")]
    pub sidecar: bool,
    /// Pod name; defaults to `<name>-<stable suffix>`.
    #[serde(default)]
    pub pod: Option<String>,
    /// Pod IP; defaults to `10.1.0.<index + 10>`.
    #[serde(default)]
    pub ip: Option<String>,
    /// `istio.io/dataplane-mode` of the pod; defaults to `none` with `sidecar: false`, else to
    /// the namespace's (sidecar unless the namespace says ambient).
    #[serde(default)]
    pub dataplane: Option<Dataplane>,
    /// `istio.io/use-waypoint` on the workload's Service: a waypoint of its namespace
    /// (ambient workloads only; wins over the namespace's).
    #[serde(default)]
    pub waypoint: Option<String>,
    /// The node the pod runs on (its ztunnel counts its ambient traffic); default `node-1`.
    #[serde(default)]
    pub node: Option<String>,
}

/// Calls from one workload to a workload or an external host.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    pub from: String,
    /// Destination workload name.
    #[serde(default)]
    pub to: Option<String>,
    /// External host reached through the PassthroughCluster (no ServiceEntry).
    #[serde(default)]
    pub external: Option<String>,
    /// Exactly this many calls (count mode).
    #[serde(default)]
    pub count: Option<u64>,
    /// Calls per second (rate mode).
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub path: Option<String>,
    /// Weighted outcomes. In count mode the count is split exactly by weight.
    #[serde(default = "default_outcomes")]
    pub outcomes: Vec<Outcome>,
    /// Request duration in ms (TCP: how long the connection stays open): a number or
    /// `[min, max]` (uniform, integers).
    #[serde(default = "default_latency")]
    pub latency_ms: Range,
    /// `request.total_size` and the request body length (TCP: bytes the client sends).
    #[serde(default = "default_size")]
    pub request_bytes: Range,
    /// `response.total_size` and the response body length (TCP: bytes the server sends).
    #[serde(default = "default_size")]
    pub response_bytes: Range,
    /// HTTP and gRPC: the request's bytes on the downstream wire (Envoy's `BytesMeter`, which
    /// Istio's native stats filter reports as `istio_request_bytes` and ztunnel counts); a
    /// Wasm filter sees only `request.total_size`. Default: `request_bytes`.
    #[serde(default)]
    pub request_wire_bytes: Option<Range>,
    /// The response's bytes on the wire; default: `response_bytes`.
    #[serde(default)]
    pub response_wire_bytes: Option<Range>,
    /// gRPC: messages in the request body (1 = unary request).
    #[serde(default = "default_messages")]
    pub request_messages: Range,
    /// gRPC: messages in the response body (1 = unary response).
    #[serde(default = "default_messages")]
    pub response_messages: Range,
    /// Chunks each body (TCP: each direction) is cut into; gRPC messages may straddle them.
    #[serde(default = "default_chunks")]
    pub chunks: usize,
    #[serde(default)]
    pub mtls: Option<bool>,
    #[serde(default)]
    pub exchange: Option<Exchange>,
    /// Overrides `mesh.grpc_stats` for this gRPC call.
    #[serde(default)]
    pub grpc_stats: Option<bool>,
    /// Extra request headers (name → value) both sidecars see, after the generated ones.
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// Extra response headers (name → value) on every response of the call.
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
}

/// One weighted outcome of a call.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// HTTP status (default 200); 0 = the downstream went away before any response. Not used
    /// by TCP calls.
    #[serde(default = "default_code")]
    pub code: u16,
    /// gRPC status (gRPC calls only), sent in the trailers.
    #[serde(default)]
    pub grpc_status: Option<i32>,
    /// Envoy response flags on the client side, e.g. `UF,URX` (default none).
    #[serde(default)]
    pub flags: Option<String>,
    /// Whether the server sidecar saw the request; defaults to false when a flag says the
    /// client never reached it (UH, UF, UO, NR, NC, LH, URX, RL, UAEX, DF, OM).
    #[serde(default)]
    pub reaches_server: Option<bool>,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// A fixed value or an inclusive `[min, max]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Range {
    Fixed(u64),
    Between([u64; 2]),
}

impl Range {
    pub fn bounds(self) -> (u64, u64) {
        match self {
            Range::Fixed(v) => (v, v),
            Range::Between([a, b]) => (a.min(b), a.max(b)),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Grpc,
    /// A TCP connection through the network filter chains.
    Tcp,
}

/// How peer metadata travels for a call.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    /// Istio's metadata-exchange filter: filter state `upstream_peer` / `downstream_peer`.
    #[default]
    FilterState,
    /// Only the raw `x-envoy-peer-metadata` headers (no exchange filter stripped them).
    Headers,
    /// No peer metadata at all.
    None,
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing the scenario: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

const CLIENT_ONLY_FLAGS: [&str; 11] = [
    "UH", "UF", "UO", "NR", "NC", "LH", "URX", "RL", "UAEX", "DF", "OM",
];

impl Outcome {
    /// Whether a gRPC response carries its messages: only a 200 whose gRPC status is OK.
    pub fn grpc_response_has_messages(&self) -> bool {
        self.code == 200 && self.grpc_status.unwrap_or(0) == 0
    }

    /// Whether the server sidecar observes a call with this outcome.
    pub fn server_sees_it(&self) -> bool {
        self.reaches_server.unwrap_or_else(|| {
            !self
                .flags
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .any(|f| CLIENT_ONLY_FLAGS.contains(&f.trim()))
        })
    }
}

impl Scenario {
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::from_yaml(&text)
    }

    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.name == name)
    }

    /// True when every call has a `count` (the run ends by itself).
    pub fn is_count_mode(&self) -> bool {
        self.calls.iter().all(|c| c.count.is_some())
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |m: String| Err(ScenarioError::Invalid(m));
        let mut names = std::collections::BTreeSet::new();
        for w in &self.workloads {
            if !names.insert(&w.name) {
                return invalid(format!("workload {:?} is defined twice", w.name));
            }
            if w.sidecar && w.workers == 0 {
                return invalid(format!("workload {:?} needs at least one worker", w.name));
            }
        }
        for (i, call) in self.calls.iter().enumerate() {
            let what = format!("call #{i} from {:?}", call.from);
            if self.workload(&call.from).is_none() {
                return invalid(format!("{what}: unknown workload {:?}", call.from));
            }
            match (&call.to, &call.external) {
                (Some(to), None) => {
                    let Some(dest) = self.workload(to) else {
                        return invalid(format!("{what}: unknown destination workload {to:?}"));
                    };
                    if dest.service.is_none() && dest.app.is_none() {
                        return invalid(format!(
                            "{what}: destination {to:?} has no service (set `service` or `app`)"
                        ));
                    }
                }
                (None, Some(_)) => {}
                _ => return invalid(format!("{what}: set exactly one of `to` and `external`")),
            }
            match (call.count, call.rate) {
                (Some(_), None) => {}
                (None, Some(rate)) if rate > 0.0 => {}
                _ => {
                    return invalid(format!(
                        "{what}: set exactly one of `count` and a positive `rate`"
                    ))
                }
            }
            if call.outcomes.is_empty() || call.outcomes.iter().all(|o| o.weight == 0) {
                return invalid(format!("{what}: needs at least one outcome with a weight"));
            }
            for outcome in &call.outcomes {
                if let Some(flags) = &outcome.flags {
                    crate::host::envoy_messages::response_flag_bits(flags)
                        .map_err(|e| ScenarioError::Invalid(format!("{what}: {e}")))?;
                }
                if outcome.grpc_status.is_some() && call.protocol != Protocol::Grpc {
                    return invalid(format!("{what}: grpc_status on a non-gRPC call"));
                }
            }
            let wire = call.request_wire_bytes.is_some() || call.response_wire_bytes.is_some();
            if wire && call.protocol == Protocol::Tcp {
                return invalid(format!(
                    "{what}: request_wire_bytes/response_wire_bytes are for HTTP and gRPC; a TCP \
                     call's bytes are its wire bytes"
                ));
            }
            if call.chunks == 0 {
                return invalid(format!("{what}: `chunks` must be at least 1"));
            }
            if call.protocol != Protocol::Grpc
                && (call.request_messages != default_messages()
                    || call.response_messages != default_messages()
                    || call.grpc_stats.is_some())
            {
                return invalid(format!(
                    "{what}: request_messages/response_messages/grpc_stats need protocol: grpc"
                ));
            }
            if call.protocol == Protocol::Grpc {
                for (bytes, messages, side) in [
                    (call.request_bytes, call.request_messages, "request"),
                    (call.response_bytes, call.response_messages, "response"),
                ] {
                    let needed =
                        messages.bounds().1 * crate::host::grpc_frames::FRAME_HEADER_LEN as u64;
                    if bytes.bounds().0 < needed {
                        return invalid(format!(
                            "{what}: {side}_bytes must be at least 5 bytes per message ({needed})"
                        ));
                    }
                }
            }
        }
        let counted = self.calls.iter().filter(|c| c.count.is_some()).count();
        if counted != 0 && counted != self.calls.len() {
            return invalid("mix of `count` and `rate` calls; use one mode per scenario".into());
        }
        self.validate_ambient()
    }
}

fn default_seed() -> u64 {
    1
}
fn default_namespace() -> String {
    "default".into()
}
fn default_port() -> u16 {
    8080
}
fn default_workers() -> usize {
    2
}
fn default_true() -> bool {
    true
}
fn default_method() -> String {
    "GET".into()
}
fn default_code() -> u16 {
    200
}
fn default_weight() -> u32 {
    1
}
fn default_outcomes() -> Vec<Outcome> {
    vec![Outcome {
        code: 200,
        grpc_status: None,
        flags: None,
        reaches_server: None,
        weight: 1,
    }]
}
fn default_latency() -> Range {
    Range::Fixed(5)
}
fn default_size() -> Range {
    Range::Fixed(100)
}
fn default_messages() -> Range {
    Range::Fixed(1)
}
fn default_chunks() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
workloads:
  - {name: a, app: a}
  - {name: b, app: b, workers: 1}
calls:
  - {from: a, to: b, count: 3, latency_ms: [1, 9]}
";

    #[test]
    fn minimal_scenario_gets_defaults() {
        let s = Scenario::from_yaml(MINIMAL).unwrap();
        assert!(s.is_count_mode());
        assert_eq!(s.workloads[0].workers, 2);
        assert_eq!(s.calls[0].latency_ms.bounds(), (1, 9));
        assert_eq!(s.calls[0].outcomes[0].code, 200);
        assert!(s.mesh.mtls);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_references() {
        assert!(Scenario::from_yaml(&MINIMAL.replace("count: 3", "cuont: 3")).is_err());
        assert!(Scenario::from_yaml(&MINIMAL.replace("to: b", "to: zz")).is_err());
        let bad_flag = MINIMAL.replace("count: 3", "count: 3, outcomes: [{code: 503, flags: XX}]");
        assert!(matches!(
            Scenario::from_yaml(&bad_flag),
            Err(ScenarioError::Invalid(_))
        ));
    }

    #[test]
    fn grpc_and_tcp_calls_parse_with_their_defaults_and_limits() {
        let s = Scenario::from_yaml(&MINIMAL.replace(
            "count: 3, latency_ms: [1, 9]}",
            "count: 3, protocol: grpc, request_messages: [1, 4], response_messages: 3, \
             request_bytes: 40, response_bytes: 60, chunks: 2, grpc_stats: false}\n  \
             - {from: a, external: db.example.com, count: 1, protocol: tcp, latency_ms: 25000}",
        ))
        .unwrap();
        let (grpc, tcp) = (&s.calls[0], &s.calls[1]);
        assert_eq!(grpc.protocol, Protocol::Grpc);
        assert_eq!(grpc.request_messages.bounds(), (1, 4));
        assert_eq!(grpc.response_messages, Range::Fixed(3));
        assert_eq!((grpc.chunks, grpc.grpc_stats), (2, Some(false)));
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!((tcp.chunks, tcp.latency_ms), (1, Range::Fixed(25000)));
        assert!(s.mesh.grpc_stats);

        let too_small = MINIMAL.replace(
            "count: 3,",
            "count: 3, protocol: grpc, request_messages: 30, request_bytes: 100,",
        );
        let error = Scenario::from_yaml(&too_small).unwrap_err().to_string();
        assert!(error.contains("5 bytes per message (150)"), "{error}");
        let messages_on_http = MINIMAL.replace("count: 3,", "count: 3, response_messages: 2,");
        assert!(Scenario::from_yaml(&messages_on_http).is_err());
        let no_chunks = MINIMAL.replace("count: 3,", "count: 3, chunks: 0,");
        assert!(Scenario::from_yaml(&no_chunks).is_err());
    }

    #[test]
    fn client_only_flags_do_not_reach_the_server() {
        let outcome = |flags: &str| Outcome {
            code: 503,
            grpc_status: None,
            flags: Some(flags.into()),
            reaches_server: None,
            weight: 1,
        };
        assert!(!outcome("UF,URX").server_sees_it());
        assert!(outcome("UT").server_sees_it());
    }
}
