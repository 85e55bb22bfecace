//! What Envoy's access log reads of a simulated stream besides its headers: protocol,
//! connection addresses, SNI, body sizes and the response code details, as properties.
//!
//! Pure construction for [`super::mesh`]'s client and server views; metrics do not read these.

use super::mesh::CallInstance;
use super::scenario::Protocol;
use crate::host::{Phase, Properties};

/// One connection's two ends as `ip:port`.
pub(super) struct Connection {
    pub local: String,
    pub remote: String,
}

impl CallInstance<'_> {
    /// What Envoy's access log reads besides headers: protocol, connection addresses, SNI,
    /// body sizes and the response code details.
    pub(super) fn access_log_properties(
        &self,
        props: &mut Properties,
        downstream: Connection,
        upstream: Option<Connection>,
        sni: Option<String>,
    ) {
        let protocol = match self.call.protocol {
            Protocol::Grpc => "HTTP/2",
            _ => "HTTP/1.1",
        };
        props.set_string(&["request", "protocol"], protocol, Phase::Request);
        props.set_string(&["source", "address"], &downstream.remote, Phase::Request);
        props.set_string(
            &["destination", "address"],
            &downstream.local,
            Phase::Request,
        );
        if let Some(upstream) = upstream {
            props.set_string(&["upstream", "address"], &upstream.remote, Phase::Request);
            props.set_string(
                &["upstream", "local_address"],
                &upstream.local,
                Phase::Request,
            );
        }
        if let Some(sni) = sni {
            props.set_string(
                &["connection", "requested_server_name"],
                &sni,
                Phase::Request,
            );
        }
        props.set_int(&["request", "size"], self.request_bytes as i64, Phase::Log);
        if self.outcome.code != 0 {
            props.set_int(
                &["response", "size"],
                self.response_bytes as i64,
                Phase::Log,
            );
        }
        if self.outcome.server_sees_it() && self.outcome.code != 0 {
            props.set_string(&["response", "code_details"], "via_upstream", Phase::Log);
        }
    }
}
