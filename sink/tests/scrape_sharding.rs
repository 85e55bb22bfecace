//! Scrape scale-out end to end: three sinks in-process share the targets of a pod-discovery job
//! and of the static istiod job through the EndpointSlice of their headless Service, served
//! with the pods by the stand-in API server ([`kube_api`]). Each target counts its scrapes by
//! the replica named in the `User-Agent`; the recording receiver notes which replica (a
//! per-replica remote-write header) sent each series. One replica leaves the slice and stops:
//! the other two take its targets over. Without an answering API server a replica falls back
//! to scraping everything and says so in its self-metrics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::*;
use kube_api::KubeApi;
use meshtap_sink::RunningSink;
use meshtap_test_support::kube_api;

const SERVICE: &str = "meshtap-sink-members";
const NAMESPACE: &str = "meshtap-system";
const MEMBERS: [(&str, &str); 3] = [
    ("sink-0", "10.0.0.1"),
    ("sink-1", "10.0.0.2"),
    ("sink-2", "10.0.0.3"),
];
const PODS: usize = 9;

/// A 15020-shaped body (agent, Envoy, app) with one line the parser must skip.
const SIDECAR: &str = "\
# TYPE istio_agent_pilot_xds_pushes counter
istio_agent_pilot_xds_pushes{type=\"cds\"} 2
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{cluster_name=\"xds-grpc\"} 3
this line is not exposition text
# TYPE app_requests_total counter
app_requests_total{path=\"/\"} 42
";

const ISTIOD: &str = "\
# TYPE pilot_xds gauge
pilot_xds{version=\"1.14.3\"} 4
";

/// Scrapes of one target, by the replica its `User-Agent` names.
#[derive(Clone, Default)]
struct Hits(Arc<Mutex<BTreeMap<String, u64>>>);

impl Hits {
    fn by_replica(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

async fn answer(State((body, hits)): State<(&'static str, Hits)>, headers: HeaderMap) -> String {
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let replica = agent
        .split_once("(member ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or("unnamed")
        .to_owned();
    *hits.0.lock().unwrap().entry(replica).or_default() += 1;
    body.to_owned()
}

async fn target(path: &'static str, body: &'static str) -> (SocketAddr, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route(path, get(answer))
        .with_state((body, hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

fn sink_yaml(member: &str, receiver: &Receiver, api: &KubeApi, istiod: SocketAddr) -> String {
    format!(
        "remote_write:
  - url: {}
    headers: {{X-Replica: {member}}}
    queue: {{batch_send_deadline: 50ms, lanes: 1}}
scrape:
  interval: 200ms
  sharding: {{service: {SERVICE}, namespace: {NAMESPACE}, self: {member}, api_server: '{api}'}}
  jobs:
    - name: istiod
      static_configs: [{{targets: ['{istiod}']}}]
    - name: integrations/istio
      kubernetes_sd: {{api_server: '{api}', namespaces: [default]}}
",
        receiver.url(),
        api = api.url(),
    )
}

/// Which replica sent each series (label text), over the requests from index `from` on.
fn senders(receiver: &Receiver, from: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut senders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for request in receiver.received().into_iter().skip(from) {
        let replica = request.headers["x-replica"].to_str().unwrap().to_owned();
        for series in request.request.timeseries {
            let mut labels: Vec<String> = series
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect();
            labels.sort();
            senders
                .entry(labels.join(","))
                .or_default()
                .insert(replica.clone());
        }
    }
    senders
}

/// Every target scraped at least `n` times.
fn all_hit(targets: &[Hits], n: u64) -> bool {
    targets.iter().all(|h| h.total() >= n)
}

/// A self-metric of `sink` summed over the lines starting with `series`.
async fn metric(sink: &RunningSink, series: &str) -> f64 {
    self_metric(sink.local_addr(), series).await.unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_scrape_each_target_once_and_take_over_a_leavers_targets() {
    let receiver = Receiver::start(vec![]).await;
    let api = KubeApi::start().await;
    let (istiod, istiod_hits) = target("/metrics", ISTIOD).await;
    let mut hits = vec![istiod_hits];
    for i in 0..PODS {
        let (addr, pod_hits) = target("/stats/prometheus", SIDECAR).await;
        let annotations = format!(
            r#"{{"prometheus.io/scrape":"true","prometheus.io/port":"{}","prometheus.io/path":"/stats/prometheus"}}"#,
            addr.port()
        );
        api.apply(kube_api::pod(
            &format!("reviews-{i}"),
            &annotations,
            "127.0.0.1",
        ));
        hits.push(pod_hits);
    }
    api.apply(kube_api::endpoint_slice(NAMESPACE, SERVICE, &MEMBERS));
    let mut sinks = Vec::new();
    for (member, _) in MEMBERS {
        sinks.push(start_sink(&sink_yaml(member, &receiver, &api, istiod)).await);
    }

    // Every replica learns the three members and scrapes a disjoint share of all targets.
    let owned = |sinks: &[RunningSink]| -> Vec<String> {
        sinks
            .iter()
            .flat_map(|s| s.scrape().unwrap().targets())
            .map(|t| t.url)
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || owned(&sinks).len() == PODS + 1).await,
        "targets owned: {:?}",
        owned(&sinks)
    );
    let urls: BTreeSet<String> = owned(&sinks).into_iter().collect();
    assert_eq!(urls.len(), PODS + 1, "a target is owned twice");
    for sink in &sinks {
        assert_eq!(sink.scrape().unwrap().membership().state(), "member");
        assert_eq!(
            metric(sink, "meshtap_sink_scrape_membership_members").await,
            3.0
        );
        assert_eq!(
            metric(
                sink,
                "meshtap_sink_scrape_membership_state{state=\"member\"}"
            )
            .await,
            1.0
        );
        assert_eq!(
            metric(
                sink,
                "meshtap_sink_scrape_targets{job=\"integrations/istio\"}"
            )
            .await,
            PODS as f64
        );
        assert!(
            metric(
                sink,
                "meshtap_sink_scrape_membership_last_update_timestamp_seconds"
            )
            .await
                > 0.0
        );
    }
    let mut owned_by_metrics = 0.0;
    for sink in &sinks {
        for job in ["istiod", "integrations/istio"] {
            owned_by_metrics += metric(
                sink,
                &format!("meshtap_sink_scrape_targets_owned{{job=\"{job}\"}}"),
            )
            .await;
        }
    }
    assert_eq!(owned_by_metrics, (PODS + 1) as f64);
    // Count from here: before a replica has seen the Service's members it may have scraped
    // a target another replica owns (a loaded machine can delay its first watch event).
    for h in &hits {
        h.clear();
    }
    let converged = receiver.received().len();

    // Each target is scraped by exactly one replica, and each series has a single sender.
    assert!(
        wait_until(Duration::from_secs(20), || all_hit(&hits, 3)).await,
        "some target was not scraped"
    );
    for (i, target_hits) in hits.iter().enumerate() {
        let by = target_hits.by_replica();
        assert_eq!(by.len(), 1, "target {i} scraped by {by:?}");
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            senders(&receiver, converged)
                .keys()
                .filter(|s| s.contains("__name__=\"up\""))
                .count()
                == PODS + 1
        })
        .await
    );
    let before = senders(&receiver, converged);
    let duplicated: Vec<_> = before.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "series from two replicas: {duplicated:?}"
    );
    let mut scrapes = 0.0;
    let mut bad_lines = 0.0;
    for sink in &sinks {
        let job = "job=\"integrations/istio\"";
        scrapes += metric(
            sink,
            &format!("meshtap_sink_scrapes_total{{{job},result=\"success\"}}"),
        )
        .await;
        bad_lines += metric(
            sink,
            &format!("meshtap_sink_scrape_bad_lines_total{{{job}}}"),
        )
        .await;
    }
    assert!(scrapes >= 3.0 * PODS as f64, "{scrapes}");
    assert!(
        bad_lines >= scrapes,
        "one bad line per scrape: {bad_lines} < {scrapes}"
    );

    // The replica owning the most targets leaves the Service's endpoints, then stops (which
    // replica owns what depends on the targets' ephemeral ports, so pick it after the fact).
    let leaver_at = (0..sinks.len())
        .max_by_key(|i| sinks[*i].scrape().unwrap().targets().len())
        .unwrap();
    let leaver_name = MEMBERS[leaver_at].0;
    let leaver_targets: Vec<usize> = hits
        .iter()
        .enumerate()
        .filter(|(_, h)| h.by_replica().contains_key(leaver_name))
        .map(|(i, _)| i)
        .collect();
    assert!(
        !leaver_targets.is_empty(),
        "{leaver_name} owned nothing to hand over"
    );
    let stayers: Vec<(&str, &str)> = MEMBERS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leaver_at)
        .map(|(_, m)| *m)
        .collect();
    api.apply(kube_api::endpoint_slice(NAMESPACE, SERVICE, &stayers));
    let leaver = sinks.remove(leaver_at);
    assert!(
        wait_until(Duration::from_secs(20), || {
            leaver.scrape().unwrap().targets().is_empty()
        })
        .await,
        "{leaver_name} kept scraping after leaving"
    );
    assert_eq!(leaver.scrape().unwrap().membership().state(), "not_member");
    leaver.shutdown().await;
    for h in &hits {
        h.clear();
    }
    let from = receiver.received().len();

    // The two remaining replicas own everything between them, each target once.
    assert!(
        wait_until(Duration::from_secs(20), || owned(&sinks).len() == PODS + 1).await,
        "targets owned after the leave: {:?}",
        owned(&sinks)
    );
    assert!(
        wait_until(Duration::from_secs(20), || all_hit(&hits, 3)).await,
        "the leaver's targets {leaver_targets:?} were not taken over"
    );
    for (i, target_hits) in hits.iter().enumerate() {
        let by = target_hits.by_replica();
        assert_eq!(by.len(), 1, "target {i} scraped by {by:?}");
        assert!(
            !by.contains_key(leaver_name),
            "target {i} scraped by {by:?}"
        );
    }
    for sink in &sinks {
        assert_eq!(
            metric(sink, "meshtap_sink_scrape_membership_members").await,
            2.0
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            senders(&receiver, from)
                .keys()
                .filter(|s| s.contains("__name__=\"up\""))
                .count()
                == PODS + 1
        })
        .await,
        "not every target's up arrived after the leave"
    );
    let after = senders(&receiver, from);
    let duplicated: Vec<_> = after.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "series from two replicas: {duplicated:?}"
    );
    assert!(after.values().all(|s| !s.contains(leaver_name)));
    for sink in sinks {
        sink.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_answering_api_server_a_replica_scrapes_everything_and_says_so() {
    let receiver = Receiver::start(vec![]).await;
    let (istiod, hits) = target("/metrics", ISTIOD).await;
    // Nothing listens on port 1: every list fails.
    let yaml = format!(
        "remote_write:
  - url: {}
scrape:
  interval: 200ms
  sharding: {{service: {SERVICE}, namespace: {NAMESPACE}, self: sink-0, api_server: 'http://127.0.0.1:1'}}
  jobs:
    - name: istiod
      static_configs: [{{targets: ['{istiod}']}}]
",
        receiver.url()
    );
    let sink = start_sink(&yaml).await;
    let stage = sink.scrape().unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(20), || stage.membership().state()
            == "unknown")
        .await,
        "state stayed {}",
        stage.membership().state()
    );
    assert!(
        wait_until(Duration::from_secs(20), || hits.total() >= 2).await,
        "istiod was not scraped with the membership unknown"
    );
    assert_eq!(
        metric(
            &sink,
            "meshtap_sink_scrape_membership_state{state=\"unknown\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &sink,
            "meshtap_sink_scrape_membership_state{state=\"starting\"}"
        )
        .await,
        0.0
    );
    assert!(metric(&sink, "meshtap_sink_scrape_membership_errors_total").await >= 1.0);
    assert_eq!(
        metric(
            &sink,
            "meshtap_sink_scrape_membership_last_update_timestamp_seconds"
        )
        .await,
        0.0
    );
    sink.shutdown().await;
}
