//! A mixed sidecar/ambient mesh end to end into a real Prometheus: `scenarios/ambient-mixed.yaml`
//! runs in `meshtap-sim` with its waypoints running the compiled filter and its nodes' ztunnels
//! served by the simulated cluster; a real meshtap-sink takes the sidecars' and waypoints'
//! reports and scrapes the ztunnels through the built-in `scrape.ztunnel` job (pods listed by
//! the stand-in Kubernetes API), writing everything into Prometheus.
//!
//! Prometheus then holds exactly the expected series, every label: ztunnel's 27-label
//! `istio_tcp_*` series per node (HBONE legs `mutual_tls`, plain-TCP legs to and from sidecars
//! `unknown`; through a waypoint the waypoint is the next or previous hop), the waypoints'
//! `reporter="waypoint"` request and TCP series (source from the client, destination from the
//! server, as Istio's `server_waypoint_proxy_*` templates show), byte totals that agree between
//! a waypoint and the ztunnels around it, and the sidecars' series as in a sidecar-only mesh.
//! The expected values are written out here from the scenario and Istio's rules, not computed
//! by the simulator.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshtap_test_support::kube_api::{KubeApi, PodBuilder};
use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::cluster::{Cluster, ZtunnelTarget};
use meshtap_tests::sim::expect::request_totals;
use meshtap_tests::sim::waypoint::ResolvedWaypoint;
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};
use support::sink::Sink;

const TOKEN: &str = "e2e-ambient-token";
const WAIT: Duration = Duration::from_secs(60);

type Labels = BTreeMap<String, String>;

/// A workload as the scenario defines it: canonical name = `app`, revision = `version`,
/// service account = `app` (the simulator's defaults), cluster `Kubernetes`.
struct Peer {
    workload: &'static str,
    namespace: &'static str,
    app: &'static str,
    version: &'static str,
}

impl Peer {
    fn principal(&self) -> String {
        format!(
            "spiffe://cluster.local/ns/{}/sa/{}",
            self.namespace, self.app
        )
    }
}

const fn peer(
    workload: &'static str,
    namespace: &'static str,
    app: &'static str,
    version: &'static str,
) -> Peer {
    Peer {
        workload,
        namespace,
        app,
        version,
    }
}

const WEB: Peer = peer("web-v1", "shop", "web", "v1");
const INVENTORY: Peer = peer("inventory-v1", "shop", "inventory", "v1");
const CART: Peer = peer("cart-v1", "store", "cart", "v1");
const CATALOG: Peer = peer("catalog-v1", "store", "catalog", "v2");
const CACHE: Peer = peer("cache-v1", "store", "cache", "v1");
const CHECKOUT: Peer = peer("checkout-v1", "orders", "checkout", "v1");
const LEDGER: Peer = peer("ledger-v1", "orders", "ledger", "v1");
/// Waypoints: Deployment, service account and canonical name = the Gateway's name, canonical
/// revision `latest` (istio/istio `waypoint.yaml` pod labels).
const STORE_WAYPOINT: Peer = peer("waypoint", "store", "waypoint", "latest");
const CHECKOUT_WAYPOINT: Peer = peer("checkout-waypoint", "orders", "checkout-waypoint", "latest");

fn service_of(peer: &Peer) -> String {
    format!("{}.{}.svc.cluster.local", peer.app, peer.namespace)
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// ztunnel's 27 labels (istio/ztunnel `CommonTrafficLabels` + locality): app/version copy the
/// canonical name/revision; the source principal only from an HBONE peer certificate; the
/// nodes have no topology labels, so the locality is `unknown`.
fn l4(reporter: &str, s: &Peer, d: &Peer, service: &Peer, hbone: bool) -> Labels {
    let unknown = || "unknown".to_owned();
    labels(&[
        ("reporter", reporter.into()),
        ("source_workload", s.workload.into()),
        ("source_canonical_service", s.app.into()),
        ("source_canonical_revision", s.version.into()),
        ("source_workload_namespace", s.namespace.into()),
        (
            "source_principal",
            if hbone { s.principal() } else { unknown() },
        ),
        ("source_app", s.app.into()),
        ("source_version", s.version.into()),
        ("source_cluster", "Kubernetes".into()),
        ("destination_service", service_of(service)),
        ("destination_service_namespace", service.namespace.into()),
        ("destination_service_name", service.app.into()),
        ("destination_workload", d.workload.into()),
        ("destination_canonical_service", d.app.into()),
        ("destination_canonical_revision", d.version.into()),
        ("destination_workload_namespace", d.namespace.into()),
        ("destination_principal", d.principal()),
        ("destination_app", d.app.into()),
        ("destination_version", d.version.into()),
        ("destination_cluster", "Kubernetes".into()),
        ("request_protocol", "tcp".into()),
        ("response_flags", "-".into()),
        (
            "connection_security_policy",
            if hbone { "mutual_tls" } else { "unknown" }.into(),
        ),
        ("source_region", unknown()),
        ("source_zone", unknown()),
        ("destination_region", unknown()),
        ("destination_zone", unknown()),
    ])
}

/// The labels Istio's stats filter gives at a waypoint (`populatePeerInfo`, `ServerGateway`):
/// source from the downstream peer, destination from the upstream peer and the service's
/// cluster metadata, `mutual_tls`; the request families add protocol and response labels
/// (an empty `grpc_response_status` is no label in Prometheus).
fn waypoint_peer_labels(s: &Peer, d: &Peer, protocol: &str) -> Labels {
    labels(&[
        ("reporter", "waypoint".into()),
        ("source_workload", s.workload.into()),
        ("source_canonical_service", s.app.into()),
        ("source_canonical_revision", s.version.into()),
        ("source_workload_namespace", s.namespace.into()),
        ("source_principal", s.principal()),
        ("source_app", s.app.into()),
        ("source_version", s.version.into()),
        ("source_cluster", "Kubernetes".into()),
        ("destination_workload", d.workload.into()),
        ("destination_workload_namespace", d.namespace.into()),
        ("destination_principal", d.principal()),
        ("destination_app", d.app.into()),
        ("destination_version", d.version.into()),
        ("destination_service", service_of(d)),
        ("destination_canonical_service", d.app.into()),
        ("destination_canonical_revision", d.version.into()),
        ("destination_service_name", d.app.into()),
        ("destination_service_namespace", d.namespace.into()),
        ("destination_cluster", "Kubernetes".into()),
        ("request_protocol", protocol.into()),
        ("response_flags", "-".into()),
        ("connection_security_policy", "mutual_tls".into()),
    ])
}

fn waypoint_request(s: &Peer, d: &Peer, protocol: &str, code: &str, grpc: Option<&str>) -> Labels {
    let mut l = waypoint_peer_labels(s, d, protocol);
    l.insert("response_code".into(), code.into());
    if let Some(status) = grpc {
        l.insert("grpc_response_status".into(), status.into());
    }
    l
}

/// `(labels, value)` of every series `promql` returns, sorted.
fn series(prom: &Prometheus, promql: &str) -> Vec<(Labels, f64)> {
    let mut out: Vec<(Labels, f64)> = prom
        .query(promql)
        .as_array()
        .unwrap_or_else(|| panic!("{promql}: no vector"))
        .iter()
        .map(|s| {
            let metric = serde_json::from_value(s["metric"].clone()).unwrap();
            (metric, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Waits (bounded) until `promql` returns exactly `want`, then asserts it: scrapes and reports
/// from before the run's end may still be the newest samples for a moment.
fn assert_series_become(prom: &Prometheus, promql: &str, want: &[(Labels, f64)]) {
    let deadline = std::time::Instant::now() + WAIT;
    let mut got = series(prom, promql);
    while got != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        got = series(prom, promql);
    }
    assert_eq!(got, want, "{promql}");
}

fn sorted(mut v: Vec<(Labels, f64)>) -> Vec<(Labels, f64)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn ztunnel_pod(target: &ZtunnelTarget) -> serde_json::Value {
    let mut pod = PodBuilder::new("istio-system", &target.pod, "127.0.0.1")
        .label("app", "ztunnel")
        .container(
            "istio-proxy",
            "istio/ztunnel:1.31.0",
            &[(Some("ztunnel-stats"), target.stats.port())],
        )
        .owner("DaemonSet", "ztunnel")
        .build();
    pod["spec"]["nodeName"] = serde_json::json!(target.node);
    pod
}

/// The ztunnel series expected for `family` (value: connections or bytes of the leg).
/// One ztunnel leg: node, reporter, source, destination, service, HBONE, connections,
/// bytes up, bytes down.
type ExpectedLeg = (
    &'static str,
    &'static str,
    &'static Peer,
    &'static Peer,
    &'static Peer,
    bool,
    u64,
    u64,
    u64,
);

#[rustfmt::skip]
const LEGS: [ExpectedLeg; 10] = [
    ("node-1", "source", &CART, &STORE_WAYPOINT, &CATALOG, true, 10, 2000, 10000),
    ("node-1", "source", &CART, &STORE_WAYPOINT, &CACHE, true, 2, 600, 1400),
    ("node-1", "source", &CART, &CHECKOUT_WAYPOINT, &CHECKOUT, true, 4, 480, 1320),
    ("node-1", "destination", &WEB, &LEDGER, &LEDGER, false, 2, 800, 2400),
    ("node-1", "destination", &CHECKOUT, &LEDGER, &LEDGER, true, 3, 1500, 4500),
    ("node-2", "destination", &STORE_WAYPOINT, &CATALOG, &CATALOG, true, 10, 2000, 10000),
    ("node-2", "destination", &STORE_WAYPOINT, &CACHE, &CACHE, true, 2, 600, 1400),
    ("node-2", "destination", &CHECKOUT_WAYPOINT, &CHECKOUT, &CHECKOUT, true, 4, 480, 1320),
    ("node-2", "source", &CHECKOUT, &LEDGER, &LEDGER, true, 3, 1500, 4500),
    ("node-2", "source", &CHECKOUT, &INVENTORY, &INVENTORY, false, 5, 500, 2000),
];

fn expected_ztunnel(
    family: &str,
    ztunnels: &[ZtunnelTarget],
    value: impl Fn(u64, u64, u64) -> u64,
) -> Vec<(Labels, f64)> {
    sorted(
        LEGS.iter()
            .map(|(node, reporter, s, d, service, hbone, n, up, down)| {
                let target = ztunnels.iter().find(|z| z.node == *node).unwrap();
                let mut l = l4(reporter, s, d, service, *hbone);
                for (name, v) in [
                    ("__name__", family.to_owned()),
                    ("job", "ztunnel".to_owned()),
                    ("instance", format!("127.0.0.1:{}", target.stats.port())),
                    ("namespace", "istio-system".to_owned()),
                    ("pod", target.pod.clone()),
                    ("node", node.to_string()),
                    ("app", "ztunnel".to_owned()),
                ] {
                    l.insert(name.into(), v);
                }
                (l, value(*n, *up, *down) as f64)
            })
            .collect(),
    )
}

/// A waypoint report's target labels, as the sink adds them.
fn with_waypoint_target(mut l: Labels, family: &str, waypoint: &ResolvedWaypoint) -> Labels {
    for (name, v) in [
        ("__name__", family.to_owned()),
        ("job", "integrations/istio".to_owned()),
        ("namespace", waypoint.namespace.clone()),
        ("pod", waypoint.pod.clone()),
        ("instance", format!("{}:15020", waypoint.ip)),
    ] {
        l.insert(name.into(), v);
    }
    l
}

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ambient-mixed.yaml");
    Scenario::load(&path).unwrap()
}

/// The scenario run to its end into a real sink and Prometheus; the ztunnels keep serving
/// (the cluster lives with the simulation) until it is dropped.
/// Fields drop in order: the simulation, then the sink, then Prometheus.
struct MixedMesh {
    _sim: Simulation,
    _sink: Sink,
    prom: Prometheus,
    scenario: Scenario,
    ztunnels: Vec<ZtunnelTarget>,
    waypoints: Vec<ResolvedWaypoint>,
    root: std::path::PathBuf,
    _api: KubeApi,
    _runtime: tokio::runtime::Runtime,
}

impl MixedMesh {
    fn run() -> MixedMesh {
        let scenario = scenario();
        let waypoints = ResolvedWaypoint::resolve_all(&scenario);
        let root =
            std::env::temp_dir().join(format!("meshtap-ambient-mixed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let clock = Clock::manual_now();
        let cluster = Cluster::for_scenario(&scenario, clock.clone(), &root.join("pods")).unwrap();
        let ztunnels = cluster.announcement().ztunnels.clone();
        assert_eq!(
            ztunnels.iter().map(|z| z.node.as_str()).collect::<Vec<_>>(),
            ["node-1", "node-2"]
        );

        let runtime = tokio::runtime::Runtime::new().unwrap();
        let api = runtime.block_on(KubeApi::start());
        for target in &ztunnels {
            api.apply(ztunnel_pod(target));
        }
        let prom = Prometheus::start();
        let sink = Sink::with_sections(
            TOKEN,
            &format!(
                "remote_write:\n  - url: \"{}\"\n    queue:\n      batch_send_deadline: 200ms\nscrape:\n  interval: 200ms\n  jobs: []\n  ztunnel: {{enabled: true, api_server: '{}'}}\n",
                prom.write_url(),
                api.url()
            ),
        );
        let options = SimOptions {
            sink_url: Some(sink.url()),
            token: Some(TOKEN.into()),
            print_reports: false,
        };
        let mut sim =
            Simulation::start(shared_module(), scenario.clone(), &options, clock).unwrap();
        sim.attach_cluster(cluster);
        sim.run_counts(CALL_SPACING);
        sim.flush();
        let totals = sim.totals();
        assert_eq!(
            (totals.waypoint_streams, totals.waypoint_connections),
            (14, 2)
        );
        MixedMesh {
            scenario,
            prom,
            ztunnels,
            waypoints,
            root,
            _sim: sim,
            _sink: sink,
            _api: api,
            _runtime: runtime,
        }
    }

    fn waypoint(&self, name: &str) -> &ResolvedWaypoint {
        self.waypoints.iter().find(|w| w.name == name).unwrap()
    }
}

impl Drop for MixedMesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// ztunnel: every leg on its node's ztunnel, every label.
fn assert_ztunnel_series(mesh: &MixedMesh) {
    let (prom, ztunnels) = (&mesh.prom, &mesh.ztunnels);
    let opened = "istio_tcp_connections_opened_total";
    let want = expected_ztunnel(opened, ztunnels, |n, _, _| n);
    assert_series_become(prom, &format!("{opened}{{app=\"ztunnel\"}}"), &want);
    for (family, value) in [
        (
            "istio_tcp_connections_closed_total",
            (|n, _, _| n) as fn(u64, u64, u64) -> u64,
        ),
        ("istio_tcp_received_bytes_total", |_, up, _| up),
        ("istio_tcp_sent_bytes_total", |_, _, down| down),
    ] {
        let want = expected_ztunnel(family, ztunnels, value);
        assert_series_become(prom, &format!("{family}{{app=\"ztunnel\"}}"), &want);
    }
}

/// Waypoints: each request once, `reporter="waypoint"`, every label.
fn assert_waypoint_series(mesh: &MixedMesh) {
    let prom = &mesh.prom;
    let opened = "istio_tcp_connections_opened_total";
    let requests = "istio_requests_total";
    let store = mesh.waypoint("waypoint");
    let checkout = mesh.waypoint("checkout-waypoint");
    let request = |d: &Peer, protocol, code, grpc, waypoint, n: f64| {
        let l = waypoint_request(&CART, d, protocol, code, grpc);
        (with_waypoint_target(l, requests, waypoint), n)
    };
    let want_requests = sorted(vec![
        request(&CATALOG, "http", "200", None, store, 8.0),
        request(&CATALOG, "http", "503", None, store, 2.0),
        request(&CHECKOUT, "grpc", "200", Some("0"), checkout, 4.0),
    ]);
    let query = format!("{requests}{{reporter=\"waypoint\"}}");
    assert_series_become(prom, &query, &want_requests);
    let tcp = waypoint_peer_labels(&CART, &CACHE, "tcp");
    let want_tcp = [(with_waypoint_target(tcp, opened, store), 2.0)];
    assert_series_become(
        prom,
        &format!("{opened}{{reporter=\"waypoint\"}}"),
        &want_tcp,
    );
}

/// The same bytes and connections at a waypoint and at the ztunnels around it.
fn assert_bytes_agree(prom: &Prometheus) {
    for (service, requests) in [("catalog-v1", 10.0), ("checkout-v1", 4.0)] {
        let l7 = |family: &str| {
            prom.scalar(&format!(
                "sum({family}{{reporter=\"waypoint\",destination_workload=\"{service}\"}})"
            ))
        };
        let l4 = |family: &str| {
            prom.scalar(&format!(
                "sum({family}{{app=\"ztunnel\",reporter=\"destination\",destination_workload=\"{service}\"}})"
            ))
        };
        assert_eq!(l7("istio_requests_total"), requests);
        assert_eq!(
            l4("istio_tcp_connections_opened_total"),
            requests,
            "{service}"
        );
        assert_eq!(
            l7("istio_request_bytes_sum"),
            l4("istio_tcp_received_bytes_total")
        );
        assert_eq!(
            l7("istio_response_bytes_sum"),
            l4("istio_tcp_sent_bytes_total")
        );
    }
    let messages = |family: &str| prom.scalar(&format!("sum({family}{{reporter=\"waypoint\"}})"));
    assert_eq!(messages("istio_request_messages_total"), 8.0);
    assert_eq!(messages("istio_response_messages_total"), 12.0);
}

/// Sidecars: as in a sidecar-only mesh. web → inventory over mTLS, checkout (ambient) →
/// inventory in plain text from an unknown source, web → ledger (ambient) named from the
/// endpoint metadata on the client side only.
fn assert_sidecar_series(prom: &Prometheus, scenario: &Scenario) {
    let sidecars = "{job=\"integrations/istio\",reporter=~\"source|destination\"}";
    for (family, total) in [
        ("istio_requests_total", "17"),
        ("istio_tcp_sent_bytes_total", "2400"),
    ] {
        let query = format!("sum({family}{sidecars})");
        let got = prom.wait_for(&query, WAIT, |r| r[0]["value"][1].as_str() == Some(total));
        assert_eq!(got[0]["value"][1], total, "{query}: {got}");
    }
    let keyed = |names: &[&str], values: &[&str], v: f64| -> (Labels, f64) {
        let pairs = names.iter().zip(values);
        (
            pairs.map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            v,
        )
    };
    let flow = ["reporter", "source_workload", "destination_workload"];
    let requests = [
        &flow[..],
        &["source_principal", "connection_security_policy"],
    ]
    .concat();
    let web = WEB.principal();
    assert_eq!(
        series(
            prom,
            &format!(
                "sum by ({}) (istio_requests_total{sidecars})",
                requests.join(",")
            )
        ),
        sorted(vec![
            keyed(
                &requests,
                &["source", "web-v1", "inventory-v1", &web, "unknown"],
                6.0
            ),
            keyed(
                &requests,
                &["destination", "web-v1", "inventory-v1", &web, "mutual_tls"],
                6.0
            ),
            keyed(
                &requests,
                &["destination", "unknown", "inventory-v1", "unknown", "none"],
                5.0
            ),
        ])
    );
    let key = |w: &str, r: &str| (w.to_owned(), r.to_owned());
    let want = BTreeMap::from([
        (key("inventory-v1", "destination"), 11),
        (key("web-v1", "source"), 6),
    ]);
    assert_eq!(request_totals(scenario), want, "sim::expect agrees");
    assert_eq!(
        series(
            prom,
            &format!(
                "sum by ({}) (istio_tcp_sent_bytes_total{{job=\"integrations/istio\"}})",
                flow.join(",")
            )
        ),
        sorted(vec![
            keyed(&flow, &["source", "web-v1", "ledger-v1"], 2400.0),
            keyed(&flow, &["waypoint", "cart-v1", "cache-v1"], 1400.0),
        ])
    );
}

#[test]
fn a_mixed_mesh_lands_with_exact_ztunnel_waypoint_and_sidecar_series() {
    let mesh = MixedMesh::run();
    assert_ztunnel_series(&mesh);
    assert_waypoint_series(&mesh);
    assert_bytes_agree(&mesh.prom);
    assert_sidecar_series(&mesh.prom, &mesh.scenario);
}
