//! The real binary reloads its config under load without losing anything: reports are posted
//! continuously while SIGHUP and `POST /-/reload` add an endpoint, remove one, change one, add
//! and remove a scrape job and try a bad config; every sample answered 204 arrives at every
//! receiver that was configured before and after its request, the removed scrape job's series
//! get stale markers, and the refused config is counted while delivery goes on.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::sink_process::SinkProcess;
use common::*;

/// The stale marker's bit pattern.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One answered report: its sample's value and when it was sent and answered.
struct Posted {
    value: f64,
    sent: Instant,
    answered: Instant,
}

/// A set of receivers (by index) active from `from` (the start of the reload that made it).
struct Phase {
    receivers: Vec<usize>,
    from: Instant,
    until: Option<Instant>,
}

/// Posts one report after another until `stop`, each with one counter series whose value is
/// its sequence number; keeps those answered 204.
fn spawn_poster(
    sink: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Posted>> {
    tokio::spawn(async move {
        let mut posted = Vec::new();
        let mut ts = now_ms();
        let mut seq = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 100_000 {
            seq += 1;
            ts = now_ms().max(ts + 1);
            let series = vec![(http_values("reviews", "200", "destination"), seq as f64)];
            let r = report("default", "p-1", 1, ts, vec![requests_family(series)]);
            let sent = Instant::now();
            let (status, body) = post_report(sink, &r, None).await;
            assert!(status == 204 || status == 503, "{status} {body}");
            if status == 204 {
                posted.push(Posted {
                    value: seq as f64,
                    sent,
                    answered: Instant::now(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        posted
    })
}

/// A scrape target serving one gauge.
async fn scrape_target() -> std::net::SocketAddr {
    let app = Router::new().route("/metrics", get(|| async { "reload_target_up 1\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn endpoint(name: &str, url: &str, deadline: &str) -> String {
    format!("  - {{name: {name}, url: '{url}', send_metadata: false, queue: {{batch_send_deadline: {deadline}}}}}\n")
}

fn config(spool: &str, endpoints: &[String], jobs: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nreload: {{http: true}}\n{spool}scrape: {{interval: 1s, jobs: [{jobs}]}}\nremote_write:\n{}",
        endpoints.concat()
    )
}

/// Values of the reported counter a receiver took.
fn reported_values(receiver: &Receiver) -> std::collections::HashSet<u64> {
    receiver
        .accepted_series()
        .into_iter()
        .filter(|(labels, _)| label(labels, "__name__") == Some("istio_requests_total"))
        .map(|(_, s)| s.value as u64)
        .collect()
}

fn job_samples(receiver: &Receiver, job: &str) -> Vec<f64> {
    receiver
        .accepted_series()
        .into_iter()
        .filter(|(labels, _)| {
            label(labels, "__name__") == Some("reload_target_up")
                && label(labels, "job") == Some(job)
        })
        .map(|(_, s)| s.value)
        .collect()
}

async fn reload_over_http(sink: &SinkProcess) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", sink.addr))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn reloads_of(sink: &SinkProcess, result: &str) -> f64 {
    let series = format!("meshtap_sink_config_reloads_total{{result=\"{result}\"}}");
    self_metric(sink.addr, &series).await.unwrap_or(-1.0)
}

async fn reload_under_load_loses_nothing(spool: bool) {
    let receivers = [
        Receiver::start(vec![]).await,
        Receiver::start(vec![]).await,
        Receiver::start(vec![]).await,
    ];
    let urls: Vec<String> = receivers.iter().map(Receiver::url).collect();
    let target = scrape_target().await;
    let job = format!("{{name: extra, static_configs: [{{targets: ['{target}']}}]}}");
    let dir = std::env::temp_dir().join(format!("meshtap-reload-{}-{spool}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = match spool {
        true => format!("spool: {{dir: '{}'}}\n", dir.join("spool").display()),
        false => String::new(),
    };
    let e = |i: usize, deadline: &str| endpoint(&format!("r{i}"), &urls[i], deadline);
    let first = config(&spool, &[e(0, "100ms"), e(1, "100ms")], "");
    let sink = SinkProcess::start(&dir, first.trim_start_matches("listen: 127.0.0.1:0\n")).await;
    let file = dir.join("sink.yaml");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The first phase starts before the first report: a sample answered before every phase
    // would be due nowhere and everywhere.
    let phases = Mutex::new(vec![Phase {
        receivers: vec![0, 1],
        from: Instant::now(),
        until: None,
    }]);
    let poster = spawn_poster(sink.addr, stop.clone());
    let reload = |yaml: String, receivers: Vec<usize>, how: &'static str| {
        let (sink, phases, file) = (&sink, &phases, &file);
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            std::fs::write(file, yaml).unwrap();
            let from = Instant::now();
            let before = reloads_of(sink, "success").await;
            match how {
                "http" => assert_eq!(reload_over_http(sink).await.0, 200, "{}", sink.log()),
                _ => {
                    sink.signal("HUP");
                    let start = Instant::now();
                    while reloads_of(sink, "success").await <= before {
                        assert!(start.elapsed() < Duration::from_secs(10), "{}", sink.log());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            let mut phases = phases.lock().unwrap();
            phases.last_mut().unwrap().until = Some(Instant::now());
            phases.push(Phase {
                receivers,
                from,
                until: None,
            });
        }
    };
    // Add r2 and the scrape job; remove r0; refuse a bad config; change r2 and drop the job.
    reload(
        config(&spool, &[e(0, "100ms"), e(1, "100ms"), e(2, "100ms")], &job),
        vec![0, 1, 2],
        "http",
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || !job_samples(
            &receivers[1],
            "extra"
        )
        .is_empty())
        .await
    );
    reload(
        config(&spool, &[e(1, "100ms"), e(2, "100ms")], &job),
        vec![1, 2],
        "hup",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        &file,
        config(&spool, &[e(1, "100ms")], "").replace(
            "reload: {http: true}",
            "reload: {http: true, watch_interval: 0s}",
        ),
    )
    .unwrap();
    let (status, body) = reload_over_http(&sink).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reload.watch_interval"), "{body}");
    std::fs::write(
        &file,
        config(&spool, &[e(1, "100ms")], "").replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1"),
    )
    .unwrap();
    let (status, body) = reload_over_http(&sink).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("listen: cannot change without a restart"),
        "{body}"
    );
    assert_eq!(reloads_of(&sink, "failure").await, 2.0);
    assert_eq!(
        self_metric(sink.addr, "meshtap_sink_config_last_reload_successful").await,
        Some(0.0)
    );
    reload(
        config(&spool, &[e(1, "100ms"), e(2, "50ms")], ""),
        vec![1, 2],
        "hup",
    )
    .await;
    assert_eq!(
        self_metric(sink.addr, "meshtap_sink_config_last_reload_successful").await,
        Some(1.0)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let posted = poster.await.unwrap();
    let phases = phases.into_inner().unwrap();
    assert!(
        posted.len() > 50,
        "only {} reports answered 204",
        posted.len()
    );

    // Every answered sample is due at the receivers of every phase its request overlapped.
    let due = |p: &Posted, r: usize| {
        phases
            .iter()
            .filter(|ph| p.answered >= ph.from && ph.until.is_none_or(|u| p.sent <= u))
            .all(|ph| ph.receivers.contains(&r))
    };
    for (r, receiver) in receivers.iter().enumerate() {
        let wanted: Vec<u64> = posted
            .iter()
            .filter(|p| due(p, r))
            .map(|p| p.value as u64)
            .collect();
        let arrived = wait_until(Duration::from_secs(20), || {
            let got = reported_values(receiver);
            wanted.iter().all(|v| got.contains(v))
        })
        .await;
        let got = reported_values(receiver);
        let missing: Vec<&u64> = wanted.iter().filter(|v| !got.contains(v)).collect();
        assert!(
            arrived,
            "receiver r{r}: {} of {} samples missing: {missing:?}\n{}",
            missing.len(),
            wanted.len(),
            sink.log()
        );
    }
    // The removed job's series were marked stale.
    let stale = wait_until(Duration::from_secs(10), || {
        job_samples(&receivers[1], "extra")
            .iter()
            .any(|v| v.to_bits() == STALE_NAN)
    })
    .await;
    assert!(stale, "no stale marker for the removed job");
    sink.signal("TERM");
    let (exit, log) = sink.wait_exit().await;
    assert!(exit.success(), "{log}");
    assert!(log.contains("config reloaded"), "{log}");
    assert!(log.contains("config reload refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing_with_memory_queues() {
    reload_under_load_loses_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing_with_a_spool() {
    reload_under_load_loses_nothing(true).await;
}
