//! Measurement helpers for `cargo xtask bench filter`: push N requests through one VM of the
//! real filter and read back wasm fuel, host calls per request and linear memory size.
//!
//! Measures, never asserts: thresholds belong to whoever reads the numbers.

use std::path::Path;
use std::sync::Arc;

use crate::host::{Clock, FilterModule, HostError, HttpExchange, Phase, Proxy, ProxyConfig};
use crate::sim::OneCall;

/// What one measured batch cost.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    pub requests: u64,
    /// Wasm fuel (roughly instructions) per request.
    pub fuel_per_request: f64,
    /// Host functions the filter called per request.
    pub host_calls_per_request: f64,
    /// The VM's linear memory after the batch.
    pub memory_bytes: usize,
}

/// One proxy with one fuel-metered VM of the filter, fed a fixed outbound request.
pub struct FilterBench {
    proxy: Proxy,
    exchange: HttpExchange,
    /// Response codes already used by [`FilterBench::run_distinct`].
    distinct_codes_used: i64,
}

const BENCH_SCENARIO: &str = "
workloads:
  - {name: productpage-v1, app: productpage, version: v1, workers: 1}
  - {name: reviews-v2, app: reviews, version: v2, port: 9080}
calls:
  - {from: productpage-v1, to: reviews-v2, count: 1, latency_ms: 12, request_bytes: 700, response_bytes: 2300}
";

impl FilterBench {
    /// Loads the filter with fuel metering and starts one VM with `plugin_config` (JSON).
    pub fn new(wasm: &Path, plugin_config: &str) -> Result<FilterBench, HostError> {
        let module = FilterModule::load(wasm, true)?;
        FilterBench::with_module(module, plugin_config)
    }

    /// Like [`FilterBench::new`] with an already loaded module (must meter fuel to get fuel).
    pub fn with_module(
        module: Arc<FilterModule>,
        plugin_config: &str,
    ) -> Result<FilterBench, HostError> {
        let call = OneCall::from_yaml(BENCH_SCENARIO, 12, 700, 2300);
        let config = ProxyConfig {
            plugin_config: plugin_config.to_string(),
            node: call.client_node,
            workers: 1,
            clock: Clock::manual_now(),
            ..ProxyConfig::default()
        };
        Ok(FilterBench {
            proxy: Proxy::start(module, config)?,
            exchange: call.client,
            distinct_codes_used: 0,
        })
    }

    /// Runs `n` requests on the VM and reports their cost.
    pub fn run(&mut self, n: u64) -> BenchResult {
        let (fuel_before, calls_before) = {
            let vm = self.proxy.vm(0);
            (vm.fuel_consumed(), vm.state().host_calls)
        };
        for _ in 0..n {
            self.proxy.run_http_stream(0, &self.exchange);
        }
        let vm = self.proxy.vm(0);
        let per = |total: u64| total as f64 / n.max(1) as f64;
        let fuel = per(vm.fuel_consumed() - fuel_before);
        let calls = per(vm.state().host_calls - calls_before);
        BenchResult {
            requests: n,
            fuel_per_request: fuel,
            host_calls_per_request: calls,
            memory_bytes: self.proxy.vm_mut(0).memory_bytes(),
        }
    }

    /// Runs `n` requests that each land in a new series (distinct `response_code` values from
    /// 1000 up, so every request adds one label set) and reports their cost; the memory growth
    /// over a run of these, divided by `n`, is the VM memory per active series.
    pub fn run_distinct(&mut self, n: u64) -> BenchResult {
        let fuel_before = self.proxy.vm(0).fuel_consumed();
        let calls_before = self.proxy.vm(0).state().host_calls;
        let mut exchange = self.exchange.clone();
        for i in 0..n {
            let code = 1000 + self.distinct_codes_used + i as i64;
            exchange
                .properties
                .set_int(&["response", "code"], code, Phase::Response);
            self.proxy.run_http_stream(0, &exchange);
        }
        self.distinct_codes_used += n as i64;
        let vm = self.proxy.vm(0);
        let per = |total: u64| total as f64 / n.max(1) as f64;
        let fuel = per(vm.fuel_consumed() - fuel_before);
        let calls = per(vm.state().host_calls - calls_before);
        BenchResult {
            requests: n,
            fuel_per_request: fuel,
            host_calls_per_request: calls,
            memory_bytes: self.proxy.vm_mut(0).memory_bytes(),
        }
    }

    /// The proxy under measurement (to tick it, read logs, check its VM status).
    pub fn proxy_mut(&mut self) -> &mut Proxy {
        &mut self.proxy
    }
}
