//! What a count-mode scenario should produce, computed from the scenario alone: request totals
//! per (workload, reporter), for end-to-end checks against a sink or Prometheus.
//!
//! Only counts; label values are the filter's business and are asserted by the filter tests.

use std::collections::BTreeMap;

use super::run::split_by_weight;
use super::scenario::Scenario;

/// `istio_requests_total` summed per `(workload, reporter)`, where reporter is `source` (the
/// caller's sidecar) or `destination` (the callee's sidecar). Workloads without a sidecar
/// report nothing; outcomes that never reach the server count on the client side only.
pub fn request_totals(scenario: &Scenario) -> BTreeMap<(String, String), u64> {
    let mut totals = BTreeMap::new();
    let sidecar = |name: &str| scenario.workload(name).is_some_and(|w| w.sidecar);
    for call in &scenario.calls {
        let weights: Vec<u64> = call.outcomes.iter().map(|o| u64::from(o.weight)).collect();
        let shares = split_by_weight(call.count.unwrap_or(0), &weights);
        for (outcome, n) in call.outcomes.iter().zip(shares) {
            if n == 0 {
                continue;
            }
            if sidecar(&call.from) {
                *totals
                    .entry((call.from.clone(), "source".to_string()))
                    .or_default() += n;
            }
            if let Some(to) = call.to.as_deref().filter(|to| sidecar(to)) {
                if outcome.server_sees_it() {
                    *totals
                        .entry((to.to_string(), "destination".to_string()))
                        .or_default() += n;
                }
            }
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookinfo_totals() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/bookinfo.yaml");
        let scenario = Scenario::load(std::path::Path::new(path)).unwrap();
        let totals = request_totals(&scenario);
        let get = |w: &str, r: &str| totals[&(w.to_string(), r.to_string())];
        assert_eq!(get("productpage-v1", "source"), 185);
        assert_eq!(get("reviews-v2", "source"), 36);
        assert_eq!(get("reviews-v2", "destination"), 36);
        assert_eq!(get("ratings-v1", "destination"), 76);
        assert_eq!(totals.len(), 8);
    }
}
