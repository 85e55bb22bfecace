//! `meshtap-sim --print-reports` on the Bookinfo scenario: every pod's last printed report
//! counts exactly the calls the scenario makes, per reporter.

use std::collections::BTreeMap;
use std::process::Command;

use meshtap_tests::filter_wasm;
use serde_json::Value;

#[test]
fn bookinfo_reports_count_every_call_once_per_sidecar() {
    let wasm = filter_wasm::locate().unwrap_or_else(|e| panic!("{e}"));
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/bookinfo.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_meshtap-sim"))
        .args([
            "--wasm",
            wasm.to_str().unwrap(),
            "--scenario",
            scenario,
            "--print-reports",
        ])
        .env_remove("MESHTAP_INGEST_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "meshtap-sim failed: {stderr}");
    assert!(
        stderr.contains("261 client-side, 0 waypoint and 252 server-side streams"),
        "{stderr}"
    );

    // Last report per pod (by sequence), one JSON object per line.
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let report: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let pod = report["proxy"]["pod"].as_str().unwrap().to_string();
        let newer = last
            .get(&pod)
            .is_none_or(|r| r["sequence"].as_u64() < report["sequence"].as_u64());
        if newer {
            last.insert(pod, report);
        }
    }
    let mut counted: BTreeMap<(String, String), f64> = BTreeMap::new();
    for report in last.values() {
        let workload = report["proxy"]["workload"].as_str().unwrap().to_string();
        for family in report["families"].as_array().unwrap() {
            if family["name"] != "istio_requests_total" {
                continue;
            }
            for series in family["series"].as_array().unwrap() {
                let reporter = series["labels"]["reporter"].as_str().unwrap().to_string();
                *counted.entry((workload.clone(), reporter)).or_default() +=
                    series["value"].as_f64().unwrap();
            }
        }
    }
    let expected: BTreeMap<(String, String), f64> = [
        ("productpage-v1", "source", 185.0),
        ("reviews-v2", "source", 36.0),
        ("reviews-v3", "source", 40.0),
        ("details-v1", "destination", 60.0),
        ("reviews-v1", "destination", 40.0),
        ("reviews-v2", "destination", 36.0),
        ("reviews-v3", "destination", 40.0),
        ("ratings-v1", "destination", 76.0),
    ]
    .into_iter()
    .map(|(w, r, n)| ((w.to_string(), r.to_string()), n))
    .collect();
    assert_eq!(counted, expected);
}
