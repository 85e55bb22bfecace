//! No credential from the config shows anywhere the sink writes: the sink binary runs (text logs,
//! then JSON logs) with a distinct secret in every secret-bearing place — URL user info of each
//! push endpoint, basic-auth password, bearer token, credential headers, ingest token, scrape
//! token file — does work that logs (a report, remote-write answered 500 and 401, a connection
//! closed without an answer, Loki answered 500, a failing scrape, a spooled shutdown and the
//! restart that recovers it), and then its stderr, `/metrics`, `/v1/summary`, `check-config`'s
//! output and the spool directory's file names are searched for every secret.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sink_process::ready_address;
use common::{get_text, http_values, post_report, report, requests_family, wait_until, Receiver};
use meshtap_report::AccessLogRecord;
use meshtap_test_support::loki::LokiReceiver;

/// Each secret once, each distinct, none a substring of another or of anything else printed.
const SECRETS: [(&str, &str); 15] = [
    ("rw-url-user", "Zq1user"),
    ("rw-url-password", "Zq2pass"),
    ("rw-basic-password", "Zq3basic"),
    ("rw-header", "Zq4hdr"),
    ("rw-bearer", "Zq5bearer"),
    ("rw-url-token", "Zq6tok"),
    ("loki-url-user", "Zq7luser"),
    ("loki-url-password", "Zq8lpass"),
    ("loki-bearer", "Zq9lbear"),
    ("loki-cookie", "Zq10cookie"),
    ("ingest-token", "Zq11ingest"),
    ("scrape-token-file", "Zq12scrape"),
    ("hangup-url-user", "Zq14huser"),
    ("hangup-url-password", "Zq15hpass"),
    ("rw-authorization-header", "Zq16authz"),
];

fn secret(name: &str) -> &'static str {
    SECRETS.iter().find(|(n, _)| *n == name).unwrap().1
}

/// A listener that accepts connections and closes them unanswered (a request error in the
/// HTTP client, whose text could carry the URL). Counts the connections.
struct Hangup {
    addr: SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hangup {
    async fn start() -> Hangup {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(socket);
            }
        });
        Hangup {
            addr,
            accepted,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The endpoints the sink talks to, and the config pointing at them.
struct World {
    refuses_500: Receiver,
    refuses_401: Receiver,
    accepts: Receiver,
    hangup: Hangup,
    loki: LokiReceiver,
    dir: PathBuf,
    config: PathBuf,
}

impl World {
    async fn start(dir: &Path) -> World {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let refuses_500 = Receiver::start(vec![]).await;
        refuses_500.refuse_with(Some(500));
        let refuses_401 = Receiver::start(vec![]).await;
        refuses_401.refuse_with(Some(401));
        let loki = LokiReceiver::start(vec![]).await;
        loki.refuse_with(Some(500));
        let world = World {
            refuses_500,
            refuses_401,
            accepts: Receiver::start(vec![]).await,
            hangup: Hangup::start().await,
            loki,
            dir: dir.to_owned(),
            config: dir.join("sink.yaml"),
        };
        std::fs::write(world.dir.join("scrape-token"), secret("scrape-token-file")).unwrap();
        std::fs::write(&world.config, world.config_text()).unwrap();
        world
    }

    /// The config: a secret in every place that takes one.
    fn config_text(&self) -> String {
        let with_user_info = |url: String, user: &str, password: Option<&str>| {
            let user_info = password.map_or(user.to_owned(), |p| format!("{user}:{p}"));
            url.replacen("://", &format!("://{user_info}@"), 1)
        };
        let hangup = self.hangup.addr;
        let ingest = secret("ingest-token");
        let spool = self.dir.join("spool");
        let spool = spool.display();
        let rw_user_info = with_user_info(
            self.refuses_500.url(),
            secret("rw-url-user"),
            Some(secret("rw-url-password")),
        );
        let rw_401 = self.refuses_401.url();
        let basic = secret("rw-basic-password");
        let header = secret("rw-header");
        let bearer = secret("rw-bearer");
        let authorization = secret("rw-authorization-header");
        let rw_token = with_user_info(self.accepts.url(), secret("rw-url-token"), None);
        let rw_hangup_user_info = with_user_info(
            format!("http://{hangup}/api/v1/push"),
            secret("hangup-url-user"),
            Some(secret("hangup-url-password")),
        );
        let loki_user_info = with_user_info(
            self.loki.url(),
            secret("loki-url-user"),
            Some(secret("loki-url-password")),
        );
        let loki_bearer = secret("loki-bearer");
        let cookie = secret("loki-cookie");
        let token_file = self.dir.join("scrape-token");
        let token_file = token_file.display();
        format!(
            r#"listen: 127.0.0.1:0
shutdown_timeout: 1s
ingest: {{tokens: ["{ingest}"]}}
spool: {{dir: "{spool}"}}
remote_write:
  - url: "{rw_user_info}"
    queue: {{lanes: 1, min_backoff: 50ms, max_backoff: 200ms, batch_send_deadline: 50ms}}
  - url: "{rw_401}"
    basic_auth: {{username: meshtap, password: "{basic}"}}
    headers: {{X-Api-Key: "{header}"}}
    queue: {{lanes: 1, batch_send_deadline: 50ms}}
  - name: authorization-header
    url: "{rw_401}"
    headers: {{Authorization: "Bearer {authorization}"}}
    queue: {{lanes: 1, batch_send_deadline: 50ms}}
  - url: "http://{hangup}/api/v1/push"
    bearer_token: "{bearer}"
    queue: {{lanes: 1, min_backoff: 50ms, max_backoff: 200ms, batch_send_deadline: 50ms}}
  - url: "{rw_token}"
    queue: {{lanes: 1, batch_send_deadline: 50ms}}
  - url: "{rw_hangup_user_info}"
    queue: {{lanes: 1, min_backoff: 50ms, max_backoff: 200ms, batch_send_deadline: 50ms}}
logs:
  - url: "{loki_user_info}"
    batch: {{max_wait: 50ms, min_backoff: 50ms, max_backoff: 200ms}}
  - url: "http://{hangup}/loki/api/v1/push"
    bearer_token: "{loki_bearer}"
    headers: {{Cookie: "{cookie}"}}
    batch: {{max_wait: 50ms, min_backoff: 50ms, max_backoff: 200ms}}
scrape:
  interval: 100ms
  timeout: 100ms
  jobs:
    - name: hangup
      bearer_token_file: "{token_file}"
      static_configs: [{{targets: ["{hangup}"]}}]
"#
        )
    }

    fn counts(&self) -> Counts {
        Counts {
            refused_500: self.refuses_500.sample_requests().len(),
            refused_401: self.refuses_401.sample_requests().len(),
            accepted: self.accepts.sample_requests().len(),
            hangups: self.hangup.connections(),
            loki_pushes: self.loki.pushes().len(),
        }
    }

    fn stop(self) {
        self.refuses_500.stop();
        self.refuses_401.stop();
        self.accepts.stop();
        self.hangup.task.abort();
        self.loki.stop();
    }
}

/// Requests each endpoint has seen so far.
struct Counts {
    refused_500: usize,
    refused_401: usize,
    accepted: usize,
    hangups: usize,
    loki_pushes: usize,
}

/// The sink binary on `127.0.0.1:0`, its stderr in a file; killed on drop.
struct Sink {
    child: Child,
    log_path: PathBuf,
    addr: SocketAddr,
}

impl Sink {
    /// Starts the binary and waits (at most 15 s) for the "ready" line naming its address.
    async fn start(world: &World, json_logs: bool) -> Sink {
        let log_path = world.dir.join(if json_logs {
            "sink-json.log"
        } else {
            "sink-text.log"
        });
        let mut command = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"));
        command.arg("--config").arg(&world.config);
        if json_logs {
            command.arg("--log-json");
        }
        let mut child = command
            .env("MESHTAP_LOG", "debug")
            .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(addr) = ready_address(&log, "listen") {
                return Sink {
                    child,
                    log_path,
                    addr,
                };
            }
            if let Some(exit) = child.try_wait().unwrap() {
                panic!("sink exited before it was ready: {exit:?}\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "sink never became ready\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (at most 15 s) for the exit; returns the whole log.
    async fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "sink did not exit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::fs::read_to_string(&self.log_path).unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file and directory name under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            names.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    names
}

/// Panics naming each secret found in any of `outputs` (`(what, text)`).
fn assert_no_secret(outputs: &[(String, String)]) {
    let mut leaks = Vec::new();
    for (what, text) in outputs {
        for (name, value) in SECRETS {
            if text.contains(value) {
                leaks.push(format!("{name} ({value}) in {what}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked: {leaks:#?}\n\n{}",
        outputs
            .iter()
            .map(|(what, text)| format!("--- {what}\n{text}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// One run: report, failures logged, self-metrics and summary read, spooled shutdown.
async fn run_once(world: &World, json_logs: bool) -> Vec<(String, String)> {
    let sink = Sink::start(world, json_logs).await;
    let now = common::now_ms();
    let mut posted = report(
        "shop",
        "cart-1",
        now - 60_000,
        now,
        vec![requests_family(vec![(
            http_values("cart.shop.svc.cluster.local", "200", "destination"),
            3.0,
        )])],
    );
    posted.access_logs = vec![AccessLogRecord {
        start_time_ns: now * 1_000_000,
        method: "GET".into(),
        path: "/cart".into(),
        protocol: "HTTP/1.1".into(),
        response_code: 200,
        authority: "cart:80".into(),
        reporter: "destination".into(),
        ..Default::default()
    }];
    let (status, body) = post_report(sink.addr, &posted, Some(secret("ingest-token"))).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = post_report(sink.addr, &posted, Some("wrong-token")).await;
    assert_eq!(status, 401);
    let before = world.counts();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = world.counts();
            now.refused_500 >= before.refused_500 + 2
                && now.refused_401 > before.refused_401
                && now.accepted > before.accepted
                && now.hangups >= before.hangups + 3
                && now.loki_pushes > before.loki_pushes
        })
        .await,
        "the sink did not reach every endpoint"
    );
    let (_, metrics) = get_text(sink.addr, "/metrics").await;
    let (_, summary) = get_text(sink.addr, "/v1/summary").await;
    let log = sink.stop().await;
    let kind = if json_logs { "json" } else { "text" };
    assert!(
        log.contains("HTTP 500") && log.contains("request failed"),
        "the failures were logged:\n{log}"
    );
    assert!(
        metrics.contains("endpoint=\"http://<redacted>@127.0.0.1:"),
        "endpoint names default to the redacted URL:\n{metrics}"
    );
    vec![
        (format!("{kind} log"), log),
        (format!("{kind} /metrics"), metrics),
        (format!("{kind} /v1/summary"), summary),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_summary_check_config_or_spool_names() {
    let dir = std::env::temp_dir().join(format!("meshtap-secrets-{}", std::process::id()));
    let world = World::start(&dir).await;
    let mut outputs = run_once(&world, false).await;
    // The second run recovers what the first spooled, and logs it per endpoint.
    outputs.extend(run_once(&world, true).await);

    // The URL's user info is sent as basic auth (and only there).
    let basic = world.refuses_500.sample_requests()[0].headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(basic.starts_with("Basic "), "{basic}");

    let check = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("check-config")
        .arg(&world.config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let printed = String::from_utf8(check.stdout).unwrap();
    assert!(printed.contains("<redacted>"), "{printed}");
    outputs.push(("check-config stdout".into(), printed));
    outputs.push((
        "check-config stderr".into(),
        String::from_utf8(check.stderr).unwrap(),
    ));
    let names = tree(&world.dir.join("spool"));
    assert!(
        names.iter().any(|n| n.contains("redacted")),
        "spool directories are named after the redacted URLs: {names:?}"
    );
    outputs.push(("spool directory names".into(), names.join("\n")));
    assert_no_secret(&outputs);
    world.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_spool_named_after_a_url_with_credentials_moves_to_the_redacted_name() {
    let dir = std::env::temp_dir().join(format!("meshtap-secrets-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let yaml = format!(
        "spool: {{dir: '{}'}}\nremote_write: [{{url: 'http://bob:Zq13move@m:9009/api/v1/push'}}]",
        dir.display()
    );
    let config = meshtap_sink::SinkConfig::from_yaml(&yaml, &|_| None).unwrap();
    let (spool, endpoint) = (config.spool.unwrap(), &config.remote_write[0]);
    let url = endpoint.url.as_str();
    // Before URLs were redacted, an unnamed endpoint's spool was named by the whole URL.
    let mut opened = spool
        .open_lanes(meshtap_sink::spool::SpoolKind::RemoteWrite, url, url, 1)
        .unwrap();
    let meta = meshtap_sink::spool::RecordMeta {
        samples: 3,
        oldest_ms: 1,
        newest_ms: 2,
        form: meshtap_sink::spool::BodyForm::AsSent,
    };
    opened[0].0.append(meta, b"body").unwrap();
    opened[0].0.sync().unwrap();
    drop(opened);
    assert!(tree(&dir).iter().any(|n| n.contains("Zq13move")));

    let reopened = spool
        .open_lanes(
            meshtap_sink::spool::SpoolKind::RemoteWrite,
            endpoint.display_name(),
            url,
            1,
        )
        .unwrap();
    assert_eq!(reopened[0].1.records, 1, "the spooled record is kept");
    let names = tree(&dir);
    assert!(!names.iter().any(|n| n.contains("Zq13move")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("redacted")), "{names:?}");
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}
