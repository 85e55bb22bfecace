//! Where one HTTP request's wasm fuel goes, by function and by layer: a deterministic sampling
//! profile of the compiled filter in the Envoy stand-in.
//!
//! The per-request path is deterministic once the VM is warm, so instead of a timer the
//! profiler runs the same request again and again in fresh, equally warmed VMs, each time with
//! `k × step` units of fuel left: the VM traps where the fuel runs out, and that wasm backtrace
//! is one sample. Every sample stands for `step` units (the last partial step of the request is
//! not sampled); summing them per innermost function gives its own cost ("self"), per function
//! anywhere on the stack its cost with callees ("inclusive"). The module must keep its function names (`cargo xtask bench filter` builds it
//! with the `wasm-named` profile: release without stripping).
//!
//! Layers answer what the filter can and cannot change: `sdk dispatch` is proxy-wasm's
//! dispatcher (context maps, callback shims, context boxes), `host buffers` is the guest
//! allocation every host call that returns data makes (`proxy_on_memory_allocate`), `meshtap`
//! is the filter's own code. Measures only; it must not be used where timing matters.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::bench::{FilterBench, Unit};
use crate::host::{FilterModule, HostError};

/// Requests run before each sample so that caches and maps are in their steady state.
const WARM_REQUESTS: u64 = 30;
/// More samples than this means the fuel never ran out: something is wrong.
const MAX_SAMPLES: u64 = 20_000;

/// The cost centres of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    SdkDispatch,
    HostBuffers,
    Meshtap,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::SdkDispatch => "sdk dispatch (proxy-wasm 0.2.5)",
            Layer::HostBuffers => "host buffers (proxy_on_memory_allocate)",
            Layer::Meshtap => "meshtap",
        }
    }

    /// The layer of a stack (demangled names, innermost first): any frame inside
    /// `proxy_on_memory_allocate` is a host buffer; else the innermost frame of meshtap's own
    /// code decides; what remains is the SDK's dispatch.
    fn of(stack: &[String]) -> Layer {
        if stack.iter().any(|f| f == "proxy_on_memory_allocate") {
            Layer::HostBuffers
        } else if stack.iter().any(|f| is_meshtap(f)) {
            Layer::Meshtap
        } else {
            Layer::SdkDispatch
        }
    }
}

fn is_meshtap(function: &str) -> bool {
    function.starts_with("meshtap_filter::") || function.starts_with("<meshtap_filter::")
}

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("sample {sample}: the VM trapped without a wasm backtrace")]
    NoBacktrace { sample: u64 },
    #[error("the request did not complete with {fuel} units of fuel")]
    NeverCompleted { fuel: u64 },
}

/// Fuel of one function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionCost {
    /// Demangled, without the hash suffix.
    pub name: String,
    pub self_fuel: u64,
    pub inclusive_fuel: u64,
}

/// The profile of one bench request.
#[derive(Clone, Debug)]
pub struct FuelProfile {
    /// Fuel of one warm request, measured directly.
    pub fuel_per_request: u64,
    /// Fuel each sample stands for.
    pub step: u64,
    /// Per layer, in [`Layer`] order.
    pub layers: Vec<(Layer, u64)>,
    /// Most expensive first (by self fuel).
    pub functions: Vec<FunctionCost>,
}

/// Demangles a Rust symbol (legacy or v0) without its hash; other names stay as they are.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Profiles the bench request of [`FilterBench`] with `plugin_config`, one sample per `step`
/// units of fuel. `module` must meter fuel and keep its function names.
pub fn profile_request(
    module: Arc<FilterModule>,
    plugin_config: &str,
    step: u64,
) -> Result<FuelProfile, ProfileError> {
    let step = step.max(1);
    let fuel_per_request = {
        let mut bench = FilterBench::with_module(module.clone(), plugin_config)?;
        bench.run(Unit::Request, WARM_REQUESTS);
        bench.run(Unit::Request, 1).fuel_per_unit as u64
    };
    let mut self_fuel: BTreeMap<String, u64> = BTreeMap::new();
    let mut inclusive_fuel: BTreeMap<String, u64> = BTreeMap::new();
    let mut layers: BTreeMap<Layer, u64> = BTreeMap::new();
    for k in 1..=MAX_SAMPLES {
        let mut bench = FilterBench::with_module(module.clone(), plugin_config)?;
        bench.run(Unit::Request, WARM_REQUESTS);
        let Some(frames) = bench.request_until_out_of_fuel(k * step)? else {
            let functions = ranked(self_fuel, inclusive_fuel);
            return Ok(FuelProfile {
                fuel_per_request,
                step,
                layers: layers.into_iter().collect(),
                functions,
            });
        };
        let stack: Vec<String> = frames.iter().map(|f| demangle(f)).collect();
        let Some(innermost) = stack.first() else {
            return Err(ProfileError::NoBacktrace { sample: k });
        };
        *self_fuel.entry(innermost.clone()).or_default() += step;
        *layers.entry(Layer::of(&stack)).or_default() += step;
        let mut seen = HashSet::new();
        for function in &stack {
            if seen.insert(function) {
                *inclusive_fuel.entry(function.clone()).or_default() += step;
            }
        }
    }
    Err(ProfileError::NeverCompleted {
        fuel: MAX_SAMPLES * step,
    })
}

fn ranked(
    self_fuel: BTreeMap<String, u64>,
    inclusive_fuel: BTreeMap<String, u64>,
) -> Vec<FunctionCost> {
    let mut functions: Vec<FunctionCost> = inclusive_fuel
        .into_iter()
        .map(|(name, inclusive)| FunctionCost {
            self_fuel: self_fuel.get(&name).copied().unwrap_or(0),
            name,
            inclusive_fuel: inclusive,
        })
        .collect();
    functions.sort_by(|a, b| {
        (b.self_fuel, b.inclusive_fuel, &a.name).cmp(&(a.self_fuel, a.inclusive_fuel, &b.name))
    });
    functions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn layers_follow_the_stack() {
        assert_eq!(
            Layer::of(&stack(&[
                "<meshtap_filter::plugin::alloc::PooledAlloc as core::alloc::global::GlobalAlloc>::alloc",
                "proxy_on_memory_allocate",
                "meshtap_filter::plugin::http::record",
                "proxy_on_log",
            ])),
            Layer::HostBuffers
        );
        assert_eq!(
            Layer::of(&stack(&[
                "hashbrown::raw::RawTable<T>::find",
                "meshtap_filter::plugin::http::known_peer",
                "proxy_on_log",
            ])),
            Layer::Meshtap
        );
        assert_eq!(
            Layer::of(&stack(&[
                "proxy_wasm::dispatcher::Dispatcher::create_http_context",
                "proxy_on_context_create",
            ])),
            Layer::SdkDispatch
        );
    }

    #[test]
    fn symbols_are_demangled_without_their_hash() {
        assert_eq!(
            demangle("_ZN14meshtap_filter6plugin4http10known_peer17h6b0d0c5b7a736790E"),
            "meshtap_filter::plugin::http::known_peer"
        );
        assert_eq!(demangle("proxy_on_log"), "proxy_on_log");
    }
}
