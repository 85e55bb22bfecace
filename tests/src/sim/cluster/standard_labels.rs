//! The label sets Istio's native stats filter gives a simulated call on each sidecar, written
//! in the order Envoy's Prometheus output has them (the reference 15020 capture's order).
//!
//! What each side knows follows Istio's rules in brief: a peer is known through metadata
//! exchange (a sidecar on both ends, exchange not off, the server reached), principals and
//! `mutual_tls` only with mTLS, a PassthroughCluster destination named by its host. The
//! filter's own labels are asserted by the filter tests; these feed the scrape stand-in only.

use crate::sim::mesh::{CallInstance, ResolvedWorkload, Target};
use crate::sim::scenario::{Exchange, Protocol};

/// Which sidecar of a call reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reporter {
    /// The client's sidecar (outbound).
    Source,
    /// The server's sidecar (inbound).
    Destination,
}

/// `name="value"` pairs of one series, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels(Vec<(&'static str, String)>);

pub type HttpLabels = Labels;
pub type TcpLabels = Labels;

impl Labels {
    /// The inside of the `{...}` block (values need no escaping: names, addresses, numbers).
    pub fn render(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect::<Vec<_>>()
            .join(",")
    }
}

const UNKNOWN: &str = "unknown";

/// One call as one side saw it.
pub struct SideOfCall<'a> {
    pub reporter: Reporter,
    pub from: &'a ResolvedWorkload,
    pub target: Target<'a>,
    pub instance: &'a CallInstance<'a>,
}

impl SideOfCall<'_> {
    fn peer_known(&self) -> bool {
        let exchanged = self.instance.exchange() != Exchange::None;
        match (self.reporter, self.target) {
            (_, Target::External(_)) => false,
            (Reporter::Source, Target::Workload(to)) => {
                to.sidecar && exchanged && self.instance.outcome.server_sees_it()
            }
            (Reporter::Destination, Target::Workload(_)) => self.from.sidecar && exchanged,
        }
    }

    fn mtls(&self) -> bool {
        self.instance.mtls(self.from, self.target)
    }

    fn source(&self) -> [String; 8] {
        let from = self.from;
        let known = self.reporter == Reporter::Source || self.peer_known();
        let or_unknown = |v: &str| if known { v.to_string() } else { UNKNOWN.into() };
        [
            or_unknown(&from.name),
            or_unknown(&from.namespace),
            if self.mtls() {
                from.identity.clone()
            } else {
                UNKNOWN.into()
            },
            or_unknown(from.app.as_deref().unwrap_or(UNKNOWN)),
            or_unknown(from.version.as_deref().unwrap_or(UNKNOWN)),
            or_unknown(&from.cluster),
            or_unknown(&from.canonical_service),
            or_unknown(&from.canonical_revision),
        ]
    }

    /// workload, namespace, principal, app, version, service, service name, service
    /// namespace, cluster, canonical service, canonical revision.
    fn destination(&self) -> [String; 11] {
        let to = match self.target {
            Target::Workload(to) => to,
            Target::External(host) => {
                let mut d: [String; 11] = std::array::from_fn(|_| UNKNOWN.to_string());
                d[5] = host.to_string();
                d[6] = "PassthroughCluster".into();
                return d;
            }
        };
        let known = self.reporter == Reporter::Destination || self.peer_known();
        let or_unknown = |v: &str| if known { v.to_string() } else { UNKNOWN.into() };
        [
            or_unknown(&to.name),
            or_unknown(&to.namespace),
            if self.mtls() {
                to.identity.clone()
            } else {
                UNKNOWN.into()
            },
            or_unknown(to.app.as_deref().unwrap_or(UNKNOWN)),
            or_unknown(to.version.as_deref().unwrap_or(UNKNOWN)),
            to.service_host.clone().unwrap_or_else(|| UNKNOWN.into()),
            to.service_name().unwrap_or(UNKNOWN).to_string(),
            to.service_namespace().to_string(),
            or_unknown(&to.cluster),
            or_unknown(&to.canonical_service),
            or_unknown(&to.canonical_revision),
        ]
    }

    fn security_policy(&self) -> &'static str {
        match (self.reporter, self.mtls()) {
            (Reporter::Source, _) => UNKNOWN,
            (Reporter::Destination, true) => "mutual_tls",
            (Reporter::Destination, false) => "none",
        }
    }

    /// The label set of the request families (HTTP and gRPC).
    pub fn http_labels(&self) -> HttpLabels {
        let outcome = self.instance.outcome;
        let grpc = self.instance.call.protocol == Protocol::Grpc;
        let grpc_status = outcome
            .grpc_status
            .filter(|_| grpc)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let mut labels = vec![("response_code", outcome.code.to_string())];
        labels.extend(self.peer_labels(if grpc { "grpc" } else { "http" }));
        labels.insert(19, ("grpc_response_status", grpc_status));
        Labels(self.with_canonical_last(labels))
    }

    /// The label set of the `istio_tcp_*` families.
    pub fn tcp_labels(&self) -> TcpLabels {
        Labels(self.with_canonical_last(self.peer_labels("tcp")))
    }

    /// Everything up to `connection_security_policy` except the canonical names.
    fn peer_labels(&self, protocol: &str) -> Vec<(&'static str, String)> {
        let [sw, sns, sp, sa, sv, sc, _, _] = self.source();
        let [dw, dns, dp, da, dv, ds, dsn, dsns, dc, _, _] = self.destination();
        let reporter = match self.reporter {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        };
        vec![
            ("reporter", reporter.to_string()),
            ("source_workload", sw),
            ("source_workload_namespace", sns),
            ("source_principal", sp),
            ("source_app", sa),
            ("source_version", sv),
            ("source_cluster", sc),
            ("destination_workload", dw),
            ("destination_workload_namespace", dns),
            ("destination_principal", dp),
            ("destination_app", da),
            ("destination_version", dv),
            ("destination_service", ds),
            ("destination_service_name", dsn),
            ("destination_service_namespace", dsns),
            ("destination_cluster", dc),
            ("request_protocol", protocol.to_string()),
            ("response_flags", self.instance.flags_text().to_string()),
            (
                "connection_security_policy",
                self.security_policy().to_string(),
            ),
        ]
    }

    fn with_canonical_last(
        &self,
        mut labels: Vec<(&'static str, String)>,
    ) -> Vec<(&'static str, String)> {
        let [.., scs, scr] = self.source();
        let [.., dcs, dcr] = self.destination();
        labels.extend([
            ("source_canonical_service", scs),
            ("destination_canonical_service", dcs),
            ("source_canonical_revision", scr),
            ("destination_canonical_revision", dcr),
        ]);
        labels
    }
}
