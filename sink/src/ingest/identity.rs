//! `ingest.verify_identity`: a report is accepted only from a caller whose SPIFFE identity is in
//! the namespace of the pod the report names.
//!
//! The identity is the `URI=spiffe://<trust domain>/ns/<namespace>/sa/<service account>` of the
//! **last** element of `x-forwarded-client-cert`. Istio's sidecar inbound listener forwards this
//! header with `APPEND_FORWARD`: it removes the header from plaintext connections, and on mutual
//! TLS appends, after whatever the client sent, an element describing the client's verified
//! certificate. So the last element is the one the sink's own sidecar wrote; earlier ones are the
//! client's word. This holds only with that sidecar in front of the sink (see the README).
//!
//! Owns reading the header and the namespace comparison; the HTTP answer is the handler's.

use axum::http::HeaderMap;
use meshtap_report::Report;

use super::xfcc::{self, XfccError};

/// The header Envoy writes the client certificate details into.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// Why a report was refused by the identity check (the text of the 403 answer).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityRefusal {
    #[error("ingest.verify_identity: no x-forwarded-client-cert header, so the caller's identity is unknown (the sink's Istio sidecar adds it to mutual-TLS requests)")]
    Missing,
    #[error("ingest.verify_identity: x-forwarded-client-cert is not visible ASCII")]
    NotText,
    #[error("ingest.verify_identity: {0}")]
    Malformed(#[from] XfccError),
    #[error(
        "ingest.verify_identity: the last x-forwarded-client-cert element has no spiffe:// URI"
    )]
    NoSpiffeUri,
    #[error("ingest.verify_identity: the last x-forwarded-client-cert element has several spiffe:// URIs")]
    SeveralSpiffeUris,
    #[error("ingest.verify_identity: caller identity {0} is not of the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>")]
    NotWorkloadIdentity(String),
    #[error("ingest.verify_identity: caller identity {caller} (namespace {caller_namespace}) may not report for pod {namespace}/{pod}")]
    NamespaceMismatch {
        caller: String,
        caller_namespace: String,
        namespace: String,
        pod: String,
    },
}

/// A workload identity `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`.
#[derive(Debug, PartialEq, Eq)]
pub struct WorkloadIdentity<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
}

impl<'a> WorkloadIdentity<'a> {
    /// Parses a SPIFFE URI of Istio's workload form; anything else is `None`.
    pub fn parse(uri: &'a str) -> Option<WorkloadIdentity<'a>> {
        let rest = strip_spiffe_scheme(uri)?;
        let (trust_domain, path) = rest.split_once('/')?;
        let mut segments = path.split('/');
        let identity = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("ns"), Some(namespace), Some("sa"), Some(service_account), None) => {
                WorkloadIdentity {
                    trust_domain,
                    namespace,
                    service_account,
                }
            }
            _ => return None,
        };
        let parts = [
            identity.trust_domain,
            identity.namespace,
            identity.service_account,
        ];
        parts.iter().all(|p| !p.is_empty()).then_some(identity)
    }
}

fn strip_spiffe_scheme(uri: &str) -> Option<&str> {
    const SCHEME: &str = "spiffe://";
    let head = uri.get(..SCHEME.len())?;
    head.eq_ignore_ascii_case(SCHEME)
        .then(|| &uri[SCHEME.len()..])
}

/// The check, on or off (`ingest.verify_identity`).
#[derive(Clone, Copy, Debug)]
pub struct IdentityCheck {
    enabled: bool,
}

impl IdentityCheck {
    pub fn new(enabled: bool) -> IdentityCheck {
        IdentityCheck { enabled }
    }

    /// Whether the caller of this request may post `report` (validated: it names its pod).
    /// Always `Ok` when the check is off.
    pub fn check(&self, headers: &HeaderMap, report: &Report) -> Result<(), IdentityRefusal> {
        if !self.enabled {
            return Ok(());
        }
        let proxy = report.proxy.as_ref().expect("validated report has a proxy");
        let caller = caller_identity(headers)?;
        let identity = WorkloadIdentity::parse(&caller)
            .ok_or_else(|| IdentityRefusal::NotWorkloadIdentity(caller.clone()))?;
        if identity.namespace == proxy.namespace {
            return Ok(());
        }
        tracing::warn!(
            caller = %caller,
            namespace = %proxy.namespace,
            pod = %proxy.pod,
            "report refused: the caller's identity is in another namespace than the pod it reports for"
        );
        Err(IdentityRefusal::NamespaceMismatch {
            caller_namespace: identity.namespace.to_owned(),
            caller,
            namespace: proxy.namespace.clone(),
            pod: proxy.pod.clone(),
        })
    }
}

/// The one `spiffe://` URI of the last XFCC element. Several header fields are read as one
/// comma-joined value, in order (as HTTP defines and Envoy merges them).
fn caller_identity(headers: &HeaderMap) -> Result<String, IdentityRefusal> {
    let mut fields = Vec::new();
    for field in headers.get_all(XFCC_HEADER) {
        fields.push(field.to_str().map_err(|_| IdentityRefusal::NotText)?);
    }
    if fields.is_empty() {
        return Err(IdentityRefusal::Missing);
    }
    let elements = xfcc::parse(&fields.join(","))?;
    let last = elements.last().expect("parse yields one element at least");
    let mut spiffe = last
        .values("URI")
        .filter(|uri| strip_spiffe_scheme(uri).is_some());
    match (spiffe.next(), spiffe.next()) {
        (Some(uri), None) => Ok(uri.to_owned()),
        (None, _) => Err(IdentityRefusal::NoSpiffeUri),
        (Some(_), Some(_)) => Err(IdentityRefusal::SeveralSpiffeUris),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use meshtap_report::Proxy;

    fn report_of(namespace: &str, pod: &str) -> Report {
        Report {
            proxy: Some(Proxy {
                namespace: namespace.into(),
                pod: pod.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(XFCC_HEADER, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    const SINK_SIDECAR: &str =
        "By=spiffe://cluster.local/ns/meshtap-system/sa/meshtap-sink;Hash=3f2a;Subject=\"\"";

    fn check(values: &[&str], namespace: &str) -> Result<(), IdentityRefusal> {
        IdentityCheck::new(true).check(&headers(values), &report_of(namespace, "p-1"))
    }

    #[test]
    fn workload_identities_parse_and_others_do_not() {
        assert_eq!(
            WorkloadIdentity::parse("spiffe://cluster.local/ns/apps/sa/sleep"),
            Some(WorkloadIdentity {
                trust_domain: "cluster.local",
                namespace: "apps",
                service_account: "sleep"
            })
        );
        assert!(WorkloadIdentity::parse("SPIFFE://td/ns/a/sa/b").is_some());
        for bad in [
            "spiffe://td/ns/a/sa/b/extra",
            "spiffe://td/ns//sa/b",
            "spiffe://td/ns/a/sa/",
            "spiffe:///ns/a/sa/b",
            "spiffe://td/sa/b/ns/a",
            "spiffe://td",
            "https://td/ns/a/sa/b",
            "spiffe:/",
        ] {
            assert_eq!(WorkloadIdentity::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_last_elements_namespace_must_be_the_reports() {
        let own = format!("{SINK_SIDECAR};URI=spiffe://cluster.local/ns/apps/sa/sleep");
        assert_eq!(check(&[&own], "apps"), Ok(()));
        // A forged earlier element does not count, in one field or in several.
        let forged = "URI=spiffe://cluster.local/ns/other/sa/x";
        assert_eq!(check(&[&format!("{forged},{own}")], "apps"), Ok(()));
        assert_eq!(check(&[forged, &own], "apps"), Ok(()));
        assert!(matches!(
            check(&[&own, forged], "apps"),
            Err(IdentityRefusal::NamespaceMismatch { .. })
        ));
        let refusal = check(&[&own], "other").unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "ingest.verify_identity: caller identity spiffe://cluster.local/ns/apps/sa/sleep (namespace apps) may not report for pod other/p-1"
        );
    }

    #[test]
    fn refusals_name_what_is_missing() {
        assert_eq!(check(&[], "apps"), Err(IdentityRefusal::Missing));
        assert!(matches!(
            check(&["URI=\"open"], "apps"),
            Err(IdentityRefusal::Malformed(_))
        ));
        assert_eq!(
            check(&[&format!("{SINK_SIDECAR};URI=")], "apps"),
            Err(IdentityRefusal::NoSpiffeUri)
        );
        assert_eq!(
            check(
                &[&format!("{SINK_SIDECAR};URI=https://apps.example/")],
                "apps"
            ),
            Err(IdentityRefusal::NoSpiffeUri)
        );
        assert_eq!(
            check(
                &[&format!(
                    "{SINK_SIDECAR};URI=spiffe://td/ns/apps/sa/a;URI=spiffe://td/ns/b/sa/b"
                )],
                "apps"
            ),
            Err(IdentityRefusal::SeveralSpiffeUris)
        );
        assert_eq!(
            check(&[&format!("{SINK_SIDECAR};URI=spiffe://td/apps")], "apps"),
            Err(IdentityRefusal::NotWorkloadIdentity(
                "spiffe://td/apps".into()
            ))
        );
        let mut non_ascii = HeaderMap::new();
        non_ascii.append(XFCC_HEADER, HeaderValue::from_bytes(b"URI=\xff").unwrap());
        assert_eq!(
            IdentityCheck::new(true).check(&non_ascii, &report_of("apps", "p")),
            Err(IdentityRefusal::NotText)
        );
    }

    #[test]
    fn an_off_check_accepts_anything() {
        let off = IdentityCheck::new(false);
        assert_eq!(off.check(&HeaderMap::new(), &report_of("a", "p")), Ok(()));
        assert_eq!(
            off.check(&headers(&["garbage"]), &report_of("a", "p")),
            Ok(())
        );
    }
}
