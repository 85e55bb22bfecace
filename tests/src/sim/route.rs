//! Which proxies observe one call, and what each sees: the client's sidecar (outbound), the
//! waypoint of the service when an ambient client calls an ambient service that has one, the
//! server's sidecar (inbound), and the connection legs the ztunnels of ambient pods count.
//!
//! A sidecar never talks HBONE to an ambient pod here: an ambient pod looks to a sidecar like
//! a pod without one (plain TCP, peer named from endpoint metadata) and a sidecar pod looks to
//! ztunnel like a pod outside the mesh (plain TCP legs). A sidecar calling a service behind a
//! waypoint is refused by the scenario's validation.
//!
//! Builds owned views from a [`CallInstance`]; running them is `run_call.rs`'s business.

use crate::host::{HttpExchange, TcpConnectionSpec};

use super::ambient::legs::{call_legs, L4Call};
use super::ambient::L4Leg;
use super::cluster::{Cluster, Reporter, SideOfCall};
use super::mesh::{CallInstance, Target};
use super::mesh_tcp::TcpData;
use super::scenario::{Call, Protocol, Scenario};
use super::waypoint::ResolvedWaypoint;
use super::workload::ResolvedWorkload;

/// Which proxy of the route a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The caller's sidecar (`reporter="source"`).
    Client,
    /// The service's waypoint (`reporter="waypoint"`).
    Waypoint,
    /// The callee's sidecar (`reporter="destination"`).
    Server,
}

/// What one proxy observes of the call.
#[derive(Clone, Debug)]
pub enum View {
    Http(HttpExchange),
    Tcp(TcpConnectionSpec),
}

/// One proxy's observation: the key of its proxy, its role, its view.
#[derive(Clone, Debug)]
pub struct ObservedSide {
    pub proxy: String,
    pub role: Role,
    pub view: View,
}

/// Everything observed of one call.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub sides: Vec<ObservedSide>,
    /// The bytes of a TCP call (empty for HTTP and gRPC).
    pub data: TcpData,
    /// `(node, leg)` per ztunnel that counts the call.
    pub legs: Vec<(String, L4Leg)>,
}

/// The path of one call through the mesh.
pub struct Route<'a> {
    pub from: &'a ResolvedWorkload,
    pub target: Target<'a>,
    pub waypoint: Option<&'a ResolvedWaypoint>,
}

fn named<'a>(workloads: &'a [ResolvedWorkload], name: &str) -> &'a ResolvedWorkload {
    workloads
        .iter()
        .find(|w| w.name == name)
        .expect("scenario validation checked workload names")
}

impl<'a> Route<'a> {
    /// The route of `call`: the waypoint only for an ambient caller (others go straight to the
    /// pod, as traffic from outside the ambient mesh does).
    pub fn of(
        scenario: &Scenario,
        workloads: &'a [ResolvedWorkload],
        waypoints: &'a [ResolvedWaypoint],
        call: &'a Call,
    ) -> Route<'a> {
        let from = named(workloads, &call.from);
        let target = match (call.to.as_deref(), call.external.as_deref()) {
            (Some(to), _) => Target::Workload(named(workloads, to)),
            (None, Some(host)) => Target::External(host),
            (None, None) => unreachable!("scenario validation requires `to` or `external`"),
        };
        let waypoint = call
            .to
            .as_deref()
            .filter(|_| from.ambient())
            .and_then(|to| scenario.waypoint_of(to))
            .map(|wp| {
                waypoints
                    .iter()
                    .find(|r| r.name == wp.name && r.namespace == wp.namespace)
                    .expect("every waypoint is resolved")
            });
        Route {
            from,
            target,
            waypoint,
        }
    }

    fn to(&self) -> Option<&'a ResolvedWorkload> {
        match self.target {
            Target::Workload(to) => Some(to),
            Target::External(_) => None,
        }
    }

    /// What every proxy on the route observes of `instance`, and the ztunnels' legs.
    pub fn observe(&self, instance: &CallInstance<'_>) -> Observed {
        let tcp = instance.call.protocol == Protocol::Tcp;
        let mut sides = Vec::new();
        let mut side = |proxy: String, role, view| sides.push(ObservedSide { proxy, role, view });
        if self.from.sidecar {
            let view = if tcp {
                View::Tcp(instance.tcp_client_view(self.from, self.target))
            } else {
                View::Http(instance.client_view(self.from, self.target))
            };
            side(self.from.name.clone(), Role::Client, view);
        }
        if let (Some(waypoint), Some(to)) = (self.waypoint, self.to()) {
            let view = if tcp {
                View::Tcp(instance.waypoint_tcp_view(self.from, to, waypoint))
            } else {
                View::Http(instance.waypoint_view(self.from, to, waypoint))
            };
            side(waypoint.proxy_key(), Role::Waypoint, view);
        }
        if let Some(to) = self.to() {
            let view = if tcp {
                instance.tcp_server_view(self.from, to).map(View::Tcp)
            } else {
                instance.server_view(self.from, to).map(View::Http)
            };
            if let Some(view) = view {
                side(to.name.clone(), Role::Server, view);
            }
        }
        let data = if tcp {
            instance.tcp_data()
        } else {
            TcpData::default()
        };
        let legs = self.legs(instance, &data);
        Observed { sides, data, legs }
    }

    /// The ztunnels' legs: one connection per call, carrying the request and response bytes
    /// on the wire (a TCP call's data).
    fn legs(&self, instance: &CallInstance<'_>, data: &TcpData) -> Vec<(String, L4Leg)> {
        let Some(to) = self.to() else {
            return Vec::new();
        };
        let bytes = |chunks: &[Vec<u8>]| chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        let (request_bytes, response_bytes) = if instance.call.protocol == Protocol::Tcp {
            (bytes(&data.sent), bytes(&data.received))
        } else {
            let answered = instance.outcome.code != 0;
            (
                instance.request_wire_bytes,
                if answered {
                    instance.response_wire_bytes
                } else {
                    0
                },
            )
        };
        call_legs(&L4Call {
            from: self.from,
            to,
            waypoint: self.waypoint,
            reached: instance.outcome.server_sees_it(),
            request_bytes,
            response_bytes,
        })
    }

    /// Records what the cluster serves of the call: the sidecars' native stats and access
    /// lines, and the ztunnels' legs and records.
    pub fn record(&self, cluster: &mut Cluster, instance: &CallInstance<'_>, observed: &Observed) {
        for side in &observed.sides {
            let reporter = match side.role {
                Role::Client => Reporter::Source,
                Role::Server => Reporter::Destination,
                Role::Waypoint => continue,
            };
            let of_call = SideOfCall {
                reporter,
                from: self.from,
                target: self.target,
                instance,
            };
            match &side.view {
                View::Http(exchange) => cluster.record_http(&of_call, exchange),
                View::Tcp(spec) => cluster.record_tcp(&of_call, &spec.properties, &observed.data),
            }
        }
        cluster.record_l4(&observed.legs, instance.latency_ms);
    }
}
