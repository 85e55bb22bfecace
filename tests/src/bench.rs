//! Measurement helpers for `cargo xtask bench filter`: push HTTP requests, gRPC streams or TCP
//! connections through one VM of the real filter (its HTTP and NETWORK plugins both running,
//! as Istio deploys them) and read back wasm fuel, host calls, wall-clock time and linear
//! memory ([`FilterBench`]); drive a Host-header fan-out of distinct `:authority` values
//! against its cardinality control and read its reports ([`HostFanOut`]).
//!
//! Measures, never asserts: thresholds belong to whoever reads the numbers.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshtap_report::{Report, CHANNEL_HTTP};
use serde_json::Value;

use crate::host::grpc_frames::frames;
use crate::host::{
    Clock, Direction, FilterModule, HostError, HttpExchange, PeerType, Phase, PluginSpec, Proxy,
    ProxyConfig, TcpConnection, TcpConnectionSpec, Traffic,
};
use crate::sim::run::DEFAULT_SINK_CLUSTER;
use crate::sim::{OneCall, ReportReceiver};

/// What one measured batch cost, per unit (request, stream or connection, see [`Unit`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub units: u64,
    /// Wasm fuel (roughly instructions) per unit; 0 when the module does not meter fuel.
    pub fuel_per_unit: f64,
    /// Host functions the filter called per unit.
    pub host_calls_per_unit: f64,
    /// Wall-clock ns per unit, host included (inflated when the module meters fuel).
    pub ns_per_unit: f64,
    /// The VM's linear memory after the batch.
    pub memory_bytes: usize,
}

/// What one unit of a batch is. Every unit is outbound mTLS traffic of the same call, the peer
/// in filter state (what Istio's metadata exchange leaves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One HTTP request (700-byte request and 2300-byte response body, one chunk each).
    Request,
    /// One gRPC stream: one request message, then `response_messages` response messages, each
    /// in its own body chunk (one `proxy_on_response_body` per message, as with one HTTP/2 DATA
    /// frame per message). With `grpc_stats`, Envoy's grpc_stats filter state holds the counts;
    /// without it the filter counts the frames itself.
    GrpcStream {
        response_messages: usize,
        grpc_stats: bool,
    },
    /// One TCP connection on the NETWORK plugin: opened, `data_callbacks` chunks alternating
    /// downstream and upstream (downstream first), closed by the downstream peer.
    TcpConnection { data_callbacks: usize },
}

/// Payload bytes of every gRPC message and TCP chunk of the bench.
pub const PAYLOAD_BYTES: usize = 120;

/// One proxy with one VM of the filter (HTTP and NETWORK plugins), fed one fixed call.
pub struct FilterBench {
    proxy: Proxy,
    /// The call as HTTP, as the client sidecar sees it.
    request: HttpExchange,
    /// The call as gRPC (one message each way, status OK), as the client sidecar sees it.
    grpc: HttpExchange,
    /// The call as a TCP connection, as the client sidecar's network filter sees it.
    connection: TcpConnectionSpec,
    /// Response codes already used by [`FilterBench::run_distinct`].
    distinct_codes_used: i64,
}

/// The bench call; `{protocol}` and `{outcome}` are filled in per protocol.
const BENCH_SCENARIO: &str = "
workloads:
  - {name: productpage-v1, app: productpage, version: v1, workers: 1}
  - {name: reviews-v2, app: reviews, version: v2, port: 9080}
calls:
  - {from: productpage-v1, to: reviews-v2, count: 1, protocol: {protocol}, outcomes: [{outcome}]}
";

fn bench_call(protocol: &str, outcome: &str) -> OneCall {
    let yaml = BENCH_SCENARIO
        .replace("{protocol}", protocol)
        .replace("{outcome}", outcome);
    OneCall::from_yaml(&yaml, 12, 700, 2300)
}

/// `plugin_config` with `"type": "NETWORK"`, the NETWORK plugin's configuration.
fn network_config(plugin_config: &str) -> Result<String, HostError> {
    let invalid = |message: String| HostError::Wasm {
        context: "bench plugin config",
        message,
    };
    let mut config: Value =
        serde_json::from_str(plugin_config).map_err(|e| invalid(e.to_string()))?;
    let object = config
        .as_object_mut()
        .ok_or_else(|| invalid("the plugin config must be a JSON object".into()))?;
    object.insert("type".into(), Value::String("NETWORK".into()));
    Ok(config.to_string())
}

impl FilterBench {
    /// Loads the filter with fuel metering and starts one VM with `plugin_config` (JSON object)
    /// for its HTTP plugin and the same plus `"type": "NETWORK"` for its NETWORK plugin.
    pub fn new(wasm: &Path, plugin_config: &str) -> Result<FilterBench, HostError> {
        let module = FilterModule::load(wasm, true)?;
        FilterBench::with_module(module, plugin_config)
    }

    /// Like [`FilterBench::new`] with an already loaded module (must meter fuel to get fuel).
    pub fn with_module(
        module: Arc<FilterModule>,
        plugin_config: &str,
    ) -> Result<FilterBench, HostError> {
        let call = bench_call("http", "{code: 200}");
        let grpc = bench_call("grpc", "{code: 200, grpc_status: 0}");
        let config = ProxyConfig {
            plugin_config: plugin_config.to_string(),
            extra_plugins: vec![PluginSpec {
                root_id: "meshtap-tcp".into(),
                plugin_name: "meshtap-tcp".into(),
                plugin_config: network_config(plugin_config)?,
                traffic: Traffic::Network,
            }],
            node: call.client_node,
            workers: 1,
            clock: Clock::manual_now(),
            ..ProxyConfig::default()
        };
        Ok(FilterBench {
            proxy: Proxy::start(module, config)?,
            request: call.client,
            grpc: grpc.client,
            connection: call.client_tcp,
            distinct_codes_used: 0,
        })
    }

    /// Runs `n` units of `unit` on the VM and reports their cost per unit.
    pub fn run(&mut self, unit: Unit, n: u64) -> BenchResult {
        match unit {
            Unit::Request => {
                let exchange = self.request.clone();
                self.measure(n, |proxy, _| {
                    proxy.run_http_stream(0, &exchange);
                })
            }
            Unit::GrpcStream {
                response_messages,
                grpc_stats,
            } => {
                let exchange = self.grpc_stream(response_messages, grpc_stats);
                self.measure(n, |proxy, _| {
                    proxy.run_http_stream(0, &exchange);
                })
            }
            Unit::TcpConnection { data_callbacks } => {
                let connection = self.tcp_connection(data_callbacks);
                self.measure(n, |proxy, _| {
                    proxy
                        .run_tcp_connection(0, &connection)
                        .expect("worker 0 exists and its handles stay valid");
                })
            }
        }
    }

    /// Runs `n` requests that each land in a new series (distinct `response_code` values from
    /// 1000 up, so every request adds one label set) and reports their cost; the memory growth
    /// over a run of these, divided by `n`, is the VM memory per active series.
    pub fn run_distinct(&mut self, n: u64) -> BenchResult {
        let mut exchange = self.request.clone();
        let first = 1000 + self.distinct_codes_used;
        self.distinct_codes_used += n as i64;
        self.measure(n, |proxy, i| {
            exchange
                .properties
                .set_int(&["response", "code"], first + i as i64, Phase::Response);
            proxy.run_http_stream(0, &exchange);
        })
    }

    /// Runs one bench request with only `fuel_left` units of fuel left; returns the function
    /// names of the wasm backtrace where the fuel ran out (innermost first), or `None` when the
    /// request completed. The VM is dead after a trap.
    pub fn request_until_out_of_fuel(
        &mut self,
        fuel_left: u64,
    ) -> Result<Option<Vec<String>>, HostError> {
        let exchange = self.request.clone();
        self.proxy.vm_mut(0).set_fuel_left(fuel_left)?;
        self.proxy.run_http_stream(0, &exchange);
        let vm = self.proxy.vm(0);
        Ok(vm.trap().map(|_| vm.trap_frames().to_vec()))
    }

    /// The proxy under measurement (to tick it, read logs, check its VM status).
    pub fn proxy_mut(&mut self) -> &mut Proxy {
        &mut self.proxy
    }

    /// Runs `unit_of(proxy, i)` for i in 0..n and divides what VM 0 spent by `n`.
    fn measure(&mut self, n: u64, mut unit_of: impl FnMut(&mut Proxy, u64)) -> BenchResult {
        let (fuel_before, calls_before) = {
            let vm = self.proxy.vm(0);
            (vm.fuel_consumed(), vm.state().host_calls)
        };
        let started = Instant::now();
        for i in 0..n {
            unit_of(&mut self.proxy, i);
        }
        let elapsed = started.elapsed().as_nanos() as f64;
        let vm = self.proxy.vm(0);
        let per = |total: f64| total / n.max(1) as f64;
        BenchResult {
            units: n,
            fuel_per_unit: per((vm.fuel_consumed() - fuel_before) as f64),
            host_calls_per_unit: per((vm.state().host_calls - calls_before) as f64),
            ns_per_unit: per(elapsed),
            memory_bytes: self.proxy.vm_mut(0).memory_bytes(),
        }
    }

    /// The bench call as a gRPC stream of one request message and `response_messages`
    /// response messages, one body chunk per message.
    fn grpc_stream(&self, response_messages: usize, grpc_stats: bool) -> HttpExchange {
        let mut exchange = self.grpc.clone();
        let message = frames(&[PAYLOAD_BYTES]);
        exchange.request_body = vec![message.clone()];
        exchange
            .response
            .as_mut()
            .expect("the bench call has a response")
            .body = vec![message; response_messages];
        exchange.grpc_stats_filter = grpc_stats;
        exchange
    }

    /// The bench call as an mTLS TCP connection with `data_callbacks` chunks.
    fn tcp_connection(&self, data_callbacks: usize) -> TcpConnection {
        let chunk = vec![b'x'; PAYLOAD_BYTES];
        let chunks = (0..data_callbacks)
            .map(|i| {
                let direction = if i % 2 == 0 {
                    Direction::Downstream
                } else {
                    Direction::Upstream
                };
                (direction, chunk.clone(), false)
            })
            .collect();
        TcpConnection {
            spec: self.connection.clone(),
            chunks,
            closed_by: PeerType::Remote,
        }
    }
}

/// The Host-header fan-out case of cardinality control: one worker VM of the filter (HTTP
/// plugin) whose client-side app calls a new external host with every request
/// (PassthroughCluster, no Istio service metadata, so the host-header fallback makes every
/// `:authority` a new `destination_service`), reporting to a loopback receiver.
pub struct HostFanOut {
    proxy: Proxy,
    receiver: ReportReceiver,
    exchange: HttpExchange,
    /// Where `:authority` is in the request headers.
    authority: usize,
}

const FAN_OUT_SCENARIO: &str = "
workloads:
  - {name: crawler-v1, namespace: apps, app: crawler, version: v1}
  - {name: unused-v1, namespace: apps, app: unused, version: v1}
calls:
  - {from: crawler-v1, external: api.example.com, count: 1}
";

/// Hosts between two report ticks in [`HostFanOut::call_hosts`].
pub const HOSTS_PER_TICK: u64 = 50_000;

impl HostFanOut {
    /// Starts the proxy with `plugin_config` (JSON), its sink cluster mapped to a new loopback
    /// receiver.
    pub fn start(module: Arc<FilterModule>, plugin_config: &str) -> Result<HostFanOut, HostError> {
        let receiver = ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false)
            .map_err(|e| HostError::Wasm {
                context: "starting the loopback report receiver",
                message: e.to_string(),
            })?;
        let call = OneCall::from_yaml(FAN_OUT_SCENARIO, 10, 100, 200);
        let config = ProxyConfig {
            plugin_config: plugin_config.to_string(),
            node: call.client_node,
            workers: 1,
            clock: Clock::manual_now(),
            clusters: vec![(DEFAULT_SINK_CLUSTER.to_string(), receiver.addr())],
            ..ProxyConfig::default()
        };
        let authority = call
            .client
            .request_headers
            .iter()
            .position(|(name, _)| name == ":authority")
            .expect("the simulator's requests carry :authority");
        Ok(HostFanOut {
            proxy: Proxy::start(module, config)?,
            receiver,
            exchange: call.client,
            authority,
        })
    }

    /// The host of request `i`: `host-<i>.example.com`.
    pub fn host(i: u64) -> String {
        format!("host-{i}.example.com")
    }

    /// One request to [`HostFanOut::host`]`(i)` for each i in `hosts`, 10 s of manual time (a
    /// report tick) after every [`HOSTS_PER_TICK`]-th host.
    pub fn call_hosts(&mut self, hosts: Range<u64>) {
        for i in hosts {
            let value = &mut self.exchange.request_headers[self.authority].1;
            value.clear();
            value.push_str(&HostFanOut::host(i));
            self.proxy.run_http_stream(0, &self.exchange);
            if (i + 1) % HOSTS_PER_TICK == 0 {
                self.proxy.advance(Duration::from_secs(10));
            }
        }
    }

    /// Lets two report intervals of 10 s pass; returns the last HTTP report received.
    pub fn last_report(&mut self) -> Option<Report> {
        self.proxy.advance(Duration::from_secs(21));
        self.receiver
            .reports()
            .into_iter()
            .filter(|r| r.channel == CHANNEL_HTTP)
            .max_by_key(|r| r.sequence)
    }

    /// The VM's linear memory now.
    pub fn memory_bytes(&mut self) -> usize {
        self.proxy.vm_mut(0).memory_bytes()
    }

    pub fn proxy_mut(&mut self) -> &mut Proxy {
        &mut self.proxy
    }
}
