//! `meshtap-sim`'s engine: a YAML [`scenario`] of workloads and calls, run through the host
//! with one proxy per sidecar and per waypoint, every proxy on a call's [`route`] observing it
//! as Istio would set it up, and the ztunnels of ambient pods counting its connections.
//!
//! Entry points: [`Simulation`] to drive step by step, [`run`] for a whole count-mode scenario.

pub mod ambient;
pub mod cluster;
pub mod expect;
pub mod mesh;
mod mesh_access_log;
pub mod mesh_tcp;
pub mod one_call;
pub mod open_traffic;
pub mod receiver;
pub mod report_json;
pub mod route;
pub mod run;
mod run_call;
pub mod scenario;
mod scenario_ambient;
pub mod waypoint;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use meshtap_report::Report;

use crate::host::{Clock, FilterModule};

pub use one_call::OneCall;
pub use receiver::ReportReceiver;
pub use run::{SimError, SimOptions, SimTotals, Simulation};
pub use scenario::Scenario;

/// Manual time between two calls of a count-mode run.
pub const CALL_SPACING: Duration = Duration::from_millis(5);

/// Runs a count-mode scenario to completion on a manual clock, flushes, and returns the reports
/// the loopback receiver decoded (empty when `options.sink_url` posts them to a real sink).
pub fn run(
    module: Arc<FilterModule>,
    scenario: Scenario,
    options: &SimOptions,
) -> Result<Vec<Report>, SimError> {
    if !scenario.is_count_mode() {
        return Err(SimError::Scenario(scenario::ScenarioError::Invalid(
            "sim::run needs a count-mode scenario; drive Simulation::run_rates for rates".into(),
        )));
    }
    let mut sim = Simulation::start(module, scenario, options, Clock::manual_now())?;
    sim.run_counts(CALL_SPACING);
    sim.flush();
    Ok(sim.reports())
}
