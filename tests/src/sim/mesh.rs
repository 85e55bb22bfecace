//! How a scenario looks to Envoy: each workload's node metadata and peer identity, and for one
//! HTTP or gRPC call the stream the client sidecar (outbound) and the server sidecar (inbound)
//! each observe — headers, body chunks, xds properties, certificates, filter state — the way
//! Istio sets them up. TCP connections are in `mesh_tcp.rs`, on the same helpers.
//!
//! Pure construction of host inputs; no VM is run here.

use crate::host::envoy_messages::{
    cluster_metadata, peer_filter_state, peer_metadata_header, response_flag_bits,
    upstream_host_metadata, ServiceRef,
};
use crate::host::grpc_frames::{frames, split, FRAME_HEADER_LEN};
use crate::host::{HttpExchange, Phase, Properties, PropertyValue, ResponseSpec};

use super::mesh_access_log::Connection;
use super::scenario::{Call, Exchange, MeshSettings, Outcome, Protocol};
pub use super::workload::ResolvedWorkload;

/// The port of the application's connection to its sidecar, in the simulated addresses.
pub(super) const CLIENT_PORT: u16 = 51_000;
/// The local port of a sidecar's upstream connection, in the simulated addresses.
pub(super) const UPSTREAM_LOCAL_PORT: u16 = 40_000;

/// Where a call goes.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    Workload(&'a ResolvedWorkload),
    /// An external host through the PassthroughCluster.
    External(&'a str),
}

/// One concrete call: its outcome and sampled values.
#[derive(Clone, Debug)]
pub struct CallInstance<'a> {
    pub call: &'a Call,
    pub outcome: &'a Outcome,
    pub latency_ms: u64,
    /// `request.total_size` and the request body length.
    pub request_bytes: u64,
    /// `response.total_size` and the response body length.
    pub response_bytes: u64,
    /// Bytes on the wire each way (what Istio's native filter and ztunnel count).
    pub request_wire_bytes: u64,
    pub response_wire_bytes: u64,
    /// gRPC messages each way (1 for other protocols).
    pub request_messages: u64,
    pub response_messages: u64,
    pub mesh: &'a MeshSettings,
    /// The `x-request-id` both sidecars see.
    pub request_id: String,
}

/// Payload sizes of `messages` gRPC messages whose frames total `body_bytes` (earlier messages
/// one byte longer when it does not divide evenly).
pub fn message_sizes(body_bytes: u64, messages: u64) -> Vec<usize> {
    let payload = body_bytes.saturating_sub(messages * FRAME_HEADER_LEN as u64);
    (0..messages)
        .map(|i| (payload / messages + u64::from(i < payload % messages)) as usize)
        .collect()
}

impl CallInstance<'_> {
    pub(super) fn exchange(&self) -> Exchange {
        self.call.exchange.unwrap_or(self.mesh.exchange)
    }

    pub(super) fn flags_text(&self) -> &str {
        self.outcome.flags.as_deref().unwrap_or("-")
    }

    pub(super) fn has_flag(&self, flag: &str) -> bool {
        self.flags_text().split(',').any(|x| x.trim() == flag)
    }

    /// A body of `bytes` (gRPC: `messages` framed messages), cut into the call's chunks.
    fn body(&self, bytes: u64, messages: u64) -> Vec<Vec<u8>> {
        let body = match self.call.protocol {
            Protocol::Grpc => frames(&message_sizes(bytes, messages)),
            _ => vec![b'x'; bytes as usize],
        };
        split(&body, self.call.chunks)
    }

    pub(super) fn mtls(&self, from: &ResolvedWorkload, target: Target<'_>) -> bool {
        match target {
            Target::Workload(to) => {
                from.sidecar && to.sidecar && self.call.mtls.unwrap_or(self.mesh.mtls)
            }
            Target::External(_) => false,
        }
    }

    pub(super) fn request_headers(&self, target: Target<'_>) -> Vec<(String, String)> {
        let authority = match target {
            Target::Workload(to) => {
                format!("{}:{}", to.service_name().unwrap_or(&to.name), to.port)
            }
            Target::External(host) => host.to_string(),
        };
        let grpc = self.call.protocol == Protocol::Grpc;
        let path = self.call.path.clone().unwrap_or_else(|| {
            if grpc {
                "/meshtap.sim.Echo/Call".into()
            } else {
                "/".into()
            }
        });
        let method = if grpc {
            "POST".to_string()
        } else {
            self.call.method.clone()
        };
        let mut headers = vec![
            (":authority".to_string(), authority),
            (":path".to_string(), path),
            (":method".to_string(), method),
            (":scheme".to_string(), "http".to_string()),
            ("user-agent".to_string(), "meshtap-sim".to_string()),
            ("x-request-id".to_string(), self.request_id.clone()),
        ];
        if grpc {
            headers.push(("content-type".into(), "application/grpc".into()));
        }
        headers.extend(self.call.request_headers.clone());
        headers
    }

    pub(super) fn response(&self, code: u16, peer_header: Option<String>) -> Option<ResponseSpec> {
        if code == 0 {
            return None;
        }
        let grpc = self.call.protocol == Protocol::Grpc;
        let mut headers = vec![(":status".to_string(), code.to_string())];
        if grpc {
            headers.push(("content-type".into(), "application/grpc".into()));
        }
        if let Some(value) = peer_header {
            headers.push(("x-envoy-peer-metadata".into(), value));
        }
        headers.extend(self.call.response_headers.clone());
        if self.outcome.server_sees_it() {
            headers.push((
                "x-envoy-upstream-service-time".into(),
                self.latency_ms.to_string(),
            ));
        }
        let trailers = self
            .outcome
            .grpc_status
            .filter(|_| grpc)
            .map(|status| vec![("grpc-status".to_string(), status.to_string())]);
        // gRPC messages come back only with a 200 and an OK status.
        let body = if grpc && !self.outcome.grpc_response_has_messages() {
            Vec::new()
        } else {
            self.body(self.response_bytes, self.response_messages)
        };
        Some(ResponseSpec {
            headers,
            body,
            trailers,
        })
    }

    pub(super) fn exchange_of(
        &self,
        request_headers: Vec<(String, String)>,
        response: Option<ResponseSpec>,
        properties: Properties,
    ) -> HttpExchange {
        HttpExchange {
            request_headers,
            request_body: self.body(self.request_bytes, self.request_messages),
            request_trailers: None,
            response,
            properties,
            grpc_stats_filter: self.call.grpc_stats.unwrap_or(self.mesh.grpc_stats),
        }
    }

    pub(super) fn end_of_stream_properties(&self, props: &mut Properties, code: u16, flags: u64) {
        if code != 0 {
            props.set_int(&["response", "code"], i64::from(code), Phase::Response);
        }
        props.set(
            &["response", "flags"],
            PropertyValue::Uint(flags),
            Phase::Log,
        );
        if let (Protocol::Grpc, Some(status)) = (self.call.protocol, self.outcome.grpc_status) {
            props.set_int(&["response", "grpc_status"], i64::from(status), Phase::Log);
        }
        props.set_int(
            &["request", "duration"],
            (self.latency_ms * 1_000_000) as i64,
            Phase::Log,
        );
        props.set_int(
            &["request", "total_size"],
            self.request_bytes as i64,
            Phase::Log,
        );
        props.set_int(
            &["response", "total_size"],
            self.response_bytes as i64,
            Phase::Log,
        );
    }

    /// The stream the client sidecar (outbound listener) observes.
    pub fn client_view(&self, from: &ResolvedWorkload, target: Target<'_>) -> HttpExchange {
        let flags = response_flag_bits(self.flags_text()).expect("flags were validated");
        let reached = self.outcome.server_sees_it();
        let mut request_headers = self.request_headers(target);
        let mut props = Properties::new();
        self.outbound_properties(&mut props, from, target);
        let peer_header = match target {
            Target::Workload(to) => {
                self.client_view_of_workload(from, to, &mut request_headers, &mut props)
            }
            Target::External(_) => {
                props.set_string(&["xds", "route_name"], "allow_any", Phase::Request);
                None
            }
        };
        self.end_of_stream_properties(&mut props, self.outcome.code, flags);
        let upstream_address = match target {
            Target::Workload(to) => format!("{}:{}", to.ip, to.port),
            Target::External(host) => format!("{host}:443"),
        };
        self.access_log_properties(
            &mut props,
            Connection {
                local: upstream_address.clone(),
                remote: format!("{}:{}", from.ip, CLIENT_PORT),
            },
            reached.then(|| Connection {
                local: format!("{}:{}", from.ip, UPSTREAM_LOCAL_PORT),
                remote: upstream_address,
            }),
            None,
        );
        self.exchange_of(
            request_headers,
            self.response(self.outcome.code, peer_header),
            props,
        )
    }

    /// The client sidecar's view of a call to a mesh workload: the peer headers it sends in
    /// header-exchange mode, the route it matched, and what it learns of the server peer (filter
    /// state, or the response header returned here) once a sidecar answered.
    fn client_view_of_workload(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
        request_headers: &mut Vec<(String, String)>,
        props: &mut Properties,
    ) -> Option<String> {
        let exchange = self.exchange();
        if exchange == Exchange::Headers {
            request_headers.push((
                "x-envoy-peer-metadata".into(),
                peer_metadata_header(&from.peer()),
            ));
            request_headers.push(("x-envoy-peer-metadata-id".into(), from.node(self.mesh).id));
        }
        if !self.has_flag("NR") && !self.has_flag("NC") {
            let host = to.service_host.clone().unwrap_or_default();
            props.set_string(
                &["xds", "route_name"],
                &format!("{host}:{}", to.port),
                Phase::Request,
            );
        }
        if !(to.sidecar && self.outcome.server_sees_it() && self.outcome.code != 0) {
            return None;
        }
        match exchange {
            Exchange::FilterState => {
                props.set(
                    &["filter_state", "upstream_peer"],
                    PropertyValue::Bytes(peer_filter_state(&to.peer())),
                    Phase::Response,
                );
                None
            }
            Exchange::Headers => Some(peer_metadata_header(&to.peer())),
            Exchange::None => None,
        }
    }

    /// What every outbound view (HTTP or TCP) shares: direction, cluster and its metadata, the
    /// endpoint's metadata, and the upstream certificates with mTLS.
    pub(super) fn outbound_properties(
        &self,
        props: &mut Properties,
        from: &ResolvedWorkload,
        target: Target<'_>,
    ) {
        props.set_int(&["xds", "listener_direction"], 2, Phase::Request);
        let Target::Workload(to) = target else {
            props.set_string(
                &["xds", "cluster_name"],
                "PassthroughCluster",
                Phase::Request,
            );
            return;
        };
        let routed = !self.has_flag("NR") && !self.has_flag("NC");
        if routed {
            let host = to.service_host.clone().unwrap_or_default();
            props.set_string(
                &["xds", "cluster_name"],
                &format!("outbound|{}||{host}", to.port),
                Phase::Request,
            );
            let services: Vec<ServiceRef> = to.service_ref().into_iter().collect();
            props.set(
                &["xds", "cluster_metadata"],
                PropertyValue::Bytes(cluster_metadata(&services)),
                Phase::Request,
            );
        }
        if routed && !self.has_flag("UH") {
            let field = format!(
                "{};{};{};{};{}",
                to.name, to.namespace, to.canonical_service, to.canonical_revision, to.cluster
            );
            props.set(
                &["xds", "upstream_host_metadata"],
                PropertyValue::Bytes(upstream_host_metadata(&field)),
                Phase::Request,
            );
        }
        if self.outcome.server_sees_it() && self.mtls(from, target) {
            props.set_string(
                &["upstream", "uri_san_peer_certificate"],
                &to.identity,
                Phase::Request,
            );
            props.set_string(
                &["upstream", "uri_san_local_certificate"],
                &from.identity,
                Phase::Request,
            );
        }
    }

    /// What every inbound view (HTTP or TCP) shares: direction, the inbound cluster with the
    /// service metadata, and the downstream certificates with mTLS.
    pub(super) fn inbound_properties(
        &self,
        props: &mut Properties,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
    ) {
        props.set_int(&["xds", "listener_direction"], 1, Phase::Request);
        props.set_string(
            &["xds", "cluster_name"],
            &format!("inbound|{}||", to.port),
            Phase::Request,
        );
        let services: Vec<ServiceRef> = to.service_ref().into_iter().collect();
        props.set(
            &["xds", "cluster_metadata"],
            PropertyValue::Bytes(cluster_metadata(&services)),
            Phase::Request,
        );
        if self.mtls(from, Target::Workload(to)) {
            props.set_string(
                &["connection", "uri_san_peer_certificate"],
                &from.identity,
                Phase::Request,
            );
            props.set_string(
                &["connection", "uri_san_local_certificate"],
                &to.identity,
                Phase::Request,
            );
        }
    }

    /// The stream the server sidecar (inbound listener) observes, if it sees the call at all.
    pub fn server_view(
        &self,
        from: &ResolvedWorkload,
        to: &ResolvedWorkload,
    ) -> Option<HttpExchange> {
        if !to.sidecar || !self.outcome.server_sees_it() {
            return None;
        }
        let exchange = self.exchange();
        let mut request_headers = self.request_headers(Target::Workload(to));
        let mut props = Properties::new();
        self.inbound_properties(&mut props, from, to);
        props.set_string(&["xds", "route_name"], "default", Phase::Request);
        let mut peer_header = None;
        if from.sidecar {
            match exchange {
                Exchange::FilterState => {
                    props.set(
                        &["filter_state", "downstream_peer"],
                        PropertyValue::Bytes(peer_filter_state(&from.peer())),
                        Phase::Request,
                    );
                }
                Exchange::Headers => {
                    request_headers.push((
                        "x-envoy-peer-metadata".into(),
                        peer_metadata_header(&from.peer()),
                    ));
                    request_headers
                        .push(("x-envoy-peer-metadata-id".into(), from.node(self.mesh).id));
                    peer_header = Some(peer_metadata_header(&to.peer()));
                }
                Exchange::None => {}
            }
        }
        self.end_of_stream_properties(&mut props, self.outcome.code, 0);
        let local = format!("{}:{}", to.ip, to.port);
        let sni = (self.mtls(from, Target::Workload(to)) && to.service_host.is_some()).then(|| {
            format!(
                "outbound_.{}_._.{}",
                to.port,
                to.service_host.as_deref().unwrap_or_default()
            )
        });
        self.access_log_properties(
            &mut props,
            Connection {
                local: local.clone(),
                remote: format!("{}:{}", from.ip, UPSTREAM_LOCAL_PORT),
            },
            Some(Connection {
                local: format!("127.0.0.6:{UPSTREAM_LOCAL_PORT}"),
                remote: local,
            }),
            sni,
        );
        Some(self.exchange_of(
            request_headers,
            self.response(self.outcome.code, peer_header),
            props,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sizes_fill_the_body_exactly() {
        let sizes = message_sizes(100, 3);
        assert_eq!(sizes, vec![29, 28, 28]);
        assert_eq!(frames(&sizes).len(), 100);
        assert_eq!(message_sizes(5, 1), vec![0]);
    }
}
