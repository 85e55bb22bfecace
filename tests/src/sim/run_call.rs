//! One call of a running simulation, in named steps: draw its sizes and latency, find its
//! route, build what each proxy on the route observes, record that into the cluster, and start
//! it on the proxies — an HTTP stream at once, a gRPC stream or a TCP connection opened now
//! with its steps spread over the call's duration.

use rand::rngs::StdRng;
use rand::Rng;

use super::mesh::CallInstance;
use super::route::{Observed, Role, Route, View};
use super::run::Simulation;
use super::scenario::{Call, Outcome, Protocol, Range};

/// The random draws of one call.
struct CallSample {
    latency_ms: u64,
    request_bytes: u64,
    response_bytes: u64,
    request_wire_bytes: u64,
    response_wire_bytes: u64,
    request_messages: u64,
    response_messages: u64,
}

impl CallSample {
    /// Draws in a fixed order, so a seed gives the same run; the wire sizes are drawn only
    /// when the call sets them (else they equal the total sizes).
    fn draw(rng: &mut StdRng, call: &Call) -> CallSample {
        let mut sample = |range: Range| {
            let (lo, hi) = range.bounds();
            rng.random_range(lo..=hi)
        };
        let latency_ms = sample(call.latency_ms);
        let request_bytes = sample(call.request_bytes);
        let response_bytes = sample(call.response_bytes);
        let request_messages = sample(call.request_messages);
        let response_messages = sample(call.response_messages);
        let request_wire_bytes = call.request_wire_bytes.map_or(request_bytes, &mut sample);
        let response_wire_bytes = call.response_wire_bytes.map_or(response_bytes, &mut sample);
        CallSample {
            latency_ms,
            request_bytes,
            response_bytes,
            request_wire_bytes,
            response_wire_bytes,
            request_messages,
            response_messages,
        }
    }

    fn instance<'a>(
        &self,
        call: &'a Call,
        outcome: &'a Outcome,
        mesh: &'a super::scenario::MeshSettings,
        request_id: String,
    ) -> CallInstance<'a> {
        CallInstance {
            call,
            outcome,
            latency_ms: self.latency_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            request_wire_bytes: self.request_wire_bytes,
            response_wire_bytes: self.response_wire_bytes,
            request_messages: self.request_messages,
            response_messages: self.response_messages,
            mesh,
            request_id,
        }
    }
}

impl Simulation {
    /// Runs one call of `scenario.calls[call]` with outcome `outcome` through every proxy on
    /// its route. A TCP call opens its connections and a gRPC call its streams now; their data
    /// and end follow as time advances.
    pub fn run_call(&mut self, call: usize, outcome: usize) {
        let request_id = self.next_request_id();
        let spec = &self.scenario.calls[call];
        let sample = CallSample::draw(&mut self.rng, spec);
        let instance = sample.instance(
            spec,
            &spec.outcomes[outcome],
            &self.scenario.mesh,
            request_id,
        );
        let route = Route::of(&self.scenario, &self.workloads, &self.waypoints, spec);
        let observed = route.observe(&instance);
        if let Some(cluster) = self.cluster.as_mut() {
            route.record(cluster, &instance, &observed);
        }
        let long_stream = spec.protocol == Protocol::Grpc;
        self.start_observed(observed, long_stream, sample.latency_ms * 1_000_000);
    }

    /// `x-request-id` of the next call.
    fn next_request_id(&mut self) -> String {
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            self.scenario.seed as u32, self.calls_run
        );
        self.calls_run += 1;
        id
    }

    /// Starts every side on its proxy (round-robin over the proxy's workers) and delivers
    /// whatever is due now.
    fn start_observed(&mut self, observed: Observed, long_stream: bool, duration: u64) {
        let now = self.clock.now_nanos();
        let mut connections = Vec::new();
        for side in observed.sides {
            let worker = self.next_worker_of(&side.proxy);
            self.count(side.role, matches!(side.view, View::Tcp(_)));
            match side.view {
                View::Tcp(spec) => connections.push((side.proxy, worker, spec)),
                View::Http(exchange) if long_stream => {
                    let at = (side.proxy, worker);
                    self.open
                        .open_stream(&mut self.proxies, at, &exchange, now, duration);
                }
                View::Http(exchange) => {
                    let proxy = self.proxies.get_mut(&side.proxy).expect("a proxy per side");
                    proxy.run_http_stream(worker, &exchange);
                }
            }
        }
        if !connections.is_empty() {
            self.open.open_tcp(
                &mut self.proxies,
                connections,
                &observed.data,
                now,
                duration,
            );
        }
        self.open.run_due(&mut self.proxies, now);
    }

    fn count(&mut self, role: Role, tcp: bool) {
        let totals = &mut self.totals;
        let counter = match (role, tcp) {
            (Role::Client, false) => &mut totals.client_streams,
            (Role::Server, false) => &mut totals.server_streams,
            (Role::Waypoint, false) => &mut totals.waypoint_streams,
            (Role::Client, true) => &mut totals.client_connections,
            (Role::Server, true) => &mut totals.server_connections,
            (Role::Waypoint, true) => &mut totals.waypoint_connections,
        };
        *counter += 1;
    }
}
