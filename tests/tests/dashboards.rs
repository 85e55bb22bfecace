//! meshtap's Grafana dashboards (`manifests/dashboards/`) load as provisioned dashboards (unique
//! uids and panel ids, one `datasource` variable every panel and target uses, a query per
//! target) and every query follows the README's reporter rule ("Which reporter counts what"):
//! request families only through `source|waypoint`, `destination|waypoint` or
//! `$qrep|waypoint`; `istio_tcp_*` only through one non-waypoint reporter, or without a reporter
//! only for ztunnel series kept apart by pod or by reporter. Whether the panels answer is `e2e_ambient_dashboards.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/dashboards")
}

/// `(file name, dashboard)` of every JSON file in `manifests/dashboards/`.
fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(dashboards_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let dashboard = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, dashboard)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// `(panel title, expr)` of every query target.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect()
}

#[test]
fn every_dashboard_loads_as_a_provisioned_dashboard() {
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "meshtap-mesh.json",
            "meshtap-service.json",
            "meshtap-workload.json",
            "meshtap-ztunnel.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (name, dashboard) in &all {
        let uid = dashboard["uid"].as_str().unwrap();
        assert!(uids.insert(uid.to_owned()), "{name}: uid {uid} twice");
        assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let datasource: Vec<&Value> = variables
            .iter()
            .filter(|v| v["type"] == "datasource")
            .collect();
        assert_eq!(datasource.len(), 1, "{name}: one data-source variable");
        assert_eq!(datasource[0]["name"], "datasource");
        assert_eq!(datasource[0]["query"], "prometheus");
        let mut ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let id = panel["id"].as_u64().unwrap();
            assert!(ids.insert(id), "{name}: panel id {id} twice");
            let grid = &panel["gridPos"];
            let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
            assert!(right <= 24, "{name} {title}: wider than the grid");
            let targets = panel["targets"].as_array().into_iter().flatten();
            let mut refs = BTreeSet::new();
            for target in targets {
                assert_eq!(
                    panel["datasource"]["uid"], "${datasource}",
                    "{name} {title}"
                );
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{name} {title}"
                );
                assert!(target["expr"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()));
                let reference = target["refId"].as_str().unwrap();
                assert!(refs.insert(reference), "{name} {title}: refId twice");
            }
        }
    }
}

/// One `name{…}` selector of an expression: the family and its matchers as
/// `(label, operator, value)`.
#[derive(Debug)]
struct Selector {
    family: String,
    matchers: Vec<(String, String, String)>,
}

impl Selector {
    fn matcher(&self, label: &str) -> Option<(&str, &str)> {
        self.matchers
            .iter()
            .find(|(name, _, _)| name == label)
            .map(|(_, op, value)| (op.as_str(), value.as_str()))
    }
}

/// The selectors of the `istio_*`, `process_*` and `workload_manager_*` families in `expr`
/// (the dashboards' matchers hold no `}` or `,` inside their quoted values).
fn selectors(expr: &str) -> Vec<Selector> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let before = &rest[..open];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let family = before[start..].to_owned();
        let close = open + rest[open..].find('}').expect("closed selector");
        let matchers = rest[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(parse_matcher)
            .collect();
        if !family.is_empty() {
            out.push(Selector { family, matchers });
        }
        rest = &rest[close + 1..];
    }
    out
}

fn parse_matcher(matcher: &str) -> (String, String, String) {
    let at = matcher.find(['=', '!']).expect("an operator");
    let (label, rest) = matcher.split_at(at);
    let value_at = rest.find('"').expect("a quoted value");
    let op = rest[..value_at].trim();
    let value = rest[value_at..].trim().trim_matches('"');
    (label.trim().to_owned(), op.to_owned(), value.to_owned())
}

/// The request (L7) families.
const L7_FAMILIES: [&str; 6] = [
    "istio_requests_total",
    "istio_request_duration_milliseconds_bucket",
    "istio_request_bytes_bucket",
    "istio_response_bytes_bucket",
    "istio_request_messages_total",
    "istio_response_messages_total",
];

/// Whether some `by (…)` of `expr` keeps `label` apart.
fn grouped_by(expr: &str, label: &str) -> bool {
    expr.split("by (").skip(1).any(|rest| {
        let list = rest.split(')').next().unwrap_or_default();
        list.split(',').any(|name| name.trim() == label)
    })
}

/// Why `selector` (in `expr`) breaks the reporter rule, if it does.
fn rule_broken(selector: &Selector, expr: &str) -> Option<String> {
    let reporter = selector.matcher("reporter");
    if L7_FAMILIES.contains(&selector.family.as_str()) {
        let allowed = ["source|waypoint", "destination|waypoint", "$qrep|waypoint"];
        return match reporter {
            Some(("=~", value)) if allowed.contains(&value) => None,
            other => Some(format!("L7 with reporter {other:?}")),
        };
    }
    if !selector.family.starts_with("istio_tcp_") {
        return None;
    }
    match reporter {
        Some(("=", "source" | "destination")) | Some(("=~", "$qrep")) => None,
        None if selector.matcher("app") == Some(("=", "ztunnel"))
            && (grouped_by(expr, "pod") || grouped_by(expr, "reporter")) =>
        {
            None
        }
        other => Some(format!("L4 with reporter {other:?}")),
    }
}

#[test]
fn every_query_follows_the_reporter_rule() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (name, dashboard) in dashboards() {
        for (title, expr) in queries(&dashboard) {
            for selector in selectors(&expr) {
                checked += 1;
                if let Some(why) = rule_broken(&selector, &expr) {
                    broken.push(format!("{name} {title}: {why}: {expr}"));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} selectors found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_rule_check_catches_double_counting_selectors() {
    let broken = |expr: &str| {
        selectors(expr)
            .iter()
            .any(|selector| rule_broken(selector, expr).is_some())
    };
    assert!(broken(
        r#"sum(rate(istio_requests_total{reporter=~"source|destination"}[1m]))"#
    ));
    assert!(broken(
        r#"sum(rate(istio_requests_total{destination_service="a"}[1m]))"#
    ));
    assert!(broken(
        r#"sum(rate(istio_tcp_sent_bytes_total{reporter=~"source|waypoint"}[1m]))"#
    ));
    assert!(broken(
        r#"sum(rate(istio_tcp_sent_bytes_total{app="ztunnel"}[1m]))"#
    ));
    assert!(!broken(
        r#"sum by (pod) (rate(istio_tcp_sent_bytes_total{app="ztunnel"}[1m]))"#
    ));
    assert!(!broken(
        r#"sum by (response_flags,reporter) (rate(istio_tcp_connections_closed_total{app="ztunnel"}[1m]))"#
    ));
    assert!(broken(
        r#"sum by (response_flags) (rate(istio_tcp_connections_closed_total{app="ztunnel"}[1m]))"#
    ));
    assert!(!broken(
        r#"sum(rate(istio_requests_total{reporter=~"$qrep|waypoint",destination_service="$service"}[1m]))"#
    ));
}
