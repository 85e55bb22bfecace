//! TLS on both sides of the sink against a loopback HTTPS server that requires a client
//! certificate from a private CA: a scrape job with `tls_config` and a rotating
//! `bearer_token_file`, and a remote-write endpoint with `tls`. Jobs and endpoints without the
//! CA or without the client certificate fail their handshakes, visibly.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::tls_server::{Pki, TlsServer};
use common::*;
use prost::Message;

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("meshtap-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const METRICS: &str = "# TYPE secure_value gauge\nsecure_value{kind=\"a\"} 42\n";

/// The latest value the receiver accepted for `name` in `job`.
fn value(receiver: &Receiver, name: &str, job: &str) -> Option<f64> {
    receiver
        .accepted_series()
        .into_iter()
        .filter(|(labels, _)| {
            label(labels, "__name__") == Some(name) && label(labels, "job") == Some(job)
        })
        .max_by_key(|(_, s)| s.timestamp)
        .map(|(_, s)| s.value)
}

#[tokio::test]
async fn an_https_target_is_scraped_with_the_jobs_ca_client_certificate_and_bearer_token() {
    let dir = TestDir::new("scrape");
    let pki = Pki::new(&dir.0);
    let server = TlsServer::start(&pki, true, |_| {
        (
            200,
            "text/plain; version=0.0.4",
            METRICS.as_bytes().to_vec(),
        )
    })
    .await;
    let token = dir.0.join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let receiver = Receiver::start(vec![]).await;
    let target = server.addr;
    let job = |name: &str, tls: &str| {
        format!(
            "    - name: {name}\n      scheme: https\n      tls_config: {tls}\n      bearer_token_file: {}\n      static_configs: [{{targets: ['{target}']}}]\n",
            token.display()
        )
    };
    let secure_tls = format!(
        "{{ca_file: {}, cert_file: {}, key_file: {}}}",
        pki.ca_file.display(),
        pki.client_cert_file.display(),
        pki.client_key_file.display()
    );
    // A job whose targets carry another `job` label still scrapes with its own settings.
    let relabeled =
        job("relabeled", &secure_tls).replace("targets: ['", "labels: {job: renamed}, targets: ['");
    let yaml = format!(
        "remote_write:\n  - url: {}\n    send_metadata: false\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\nscrape:\n  interval: 200ms\n  timeout: 2s\n  jobs:\n{}{}{}{relabeled}",
        receiver.url(),
        job("secure", &secure_tls),
        job("unknown-ca", "{}"),
        job(
            "no-client-cert",
            &format!("{{ca_file: {}}}", pki.ca_file.display())
        ),
    );
    let sink = start_sink(&yaml).await;

    let arrived = wait_until(Duration::from_secs(10), || {
        value(&receiver, "secure_value", "secure") == Some(42.0)
            && value(&receiver, "secure_value", "renamed") == Some(42.0)
            && value(&receiver, "up", "unknown-ca") == Some(0.0)
            && value(&receiver, "up", "no-client-cert") == Some(0.0)
    })
    .await;
    assert!(
        arrived,
        "secure {:?}, unknown-ca up {:?}, no-client-cert up {:?}; handshakes refused: {:?}",
        value(&receiver, "secure_value", "secure"),
        value(&receiver, "up", "unknown-ca"),
        value(&receiver, "up", "no-client-cert"),
        server.failed_handshakes()
    );
    assert_eq!(value(&receiver, "up", "secure"), Some(1.0));
    // Only the secure job got through: every request the server read carried its token.
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer first-token")));
    assert!(
        server
            .failed_handshakes()
            .iter()
            .any(|e| e.contains("certificate")),
        "{:?}",
        server.failed_handshakes()
    );

    // A rotated token is read at the next scrape.
    std::fs::write(&token, "second-token").unwrap();
    let rotated = wait_until(Duration::from_secs(5), || {
        server
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some("Bearer second-token"))
    })
    .await;
    assert!(rotated, "the new token was never sent");
    sink.shutdown().await;
}

#[tokio::test]
async fn remote_write_over_https_trusts_the_ca_and_presents_the_client_certificate() {
    let dir = TestDir::new("remote-write");
    let pki = Pki::new(&dir.0);
    let server = TlsServer::start(&pki, true, |_| (204, "text/plain", Vec::new())).await;
    let url = format!("https://{}/api/v1/push", server.addr);
    let yaml = format!(
        "shutdown_timeout: 1s
remote_write:
  - name: mtls
    url: {url}
    send_metadata: false
    tls: {{ca_file: {ca}, cert_file: {cert}, key_file: {key}}}
    queue: {{batch_send_deadline: 50ms, lanes: 1}}
  - name: no-client-cert
    url: {url}
    send_metadata: false
    tls: {{ca_file: {ca}}}
    queue: {{batch_send_deadline: 50ms, lanes: 1, min_backoff: 20ms, max_backoff: 100ms}}
",
        ca = pki.ca_file.display(),
        cert = pki.client_cert_file.display(),
        key = pki.client_key_file.display(),
    );
    let sink = start_sink(&yaml).await;
    let ts = now_ms();
    let r = report(
        "default",
        "p-tls",
        1,
        ts,
        vec![requests_family(vec![(
            http_values("a.default.svc.cluster.local", "200", "destination"),
            7.0,
        )])],
    );
    assert_eq!(post_report(sink.local_addr(), &r, None).await.0, 204);
    let addr = sink.local_addr();
    let delivered = wait_until(Duration::from_secs(10), || !server.requests().is_empty()).await;
    assert!(
        delivered,
        "handshakes refused: {:?}",
        server.failed_handshakes()
    );
    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-encoding"), Some("snappy"));
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&request.body)
        .unwrap();
    let decoded = RecvWriteRequest::decode(&raw[..]).unwrap();
    let sample = decoded
        .timeseries
        .iter()
        .find(|ts| label(&pairs(&ts.labels), "pod") == Some("p-tls"))
        .expect("the pod's series");
    assert_eq!(sample.samples[0].value, 7.0);

    // The endpoint without a client certificate is refused at the handshake and retries.
    let mut retried = 0.0;
    for _ in 0..250 {
        retried = self_metric(
            addr,
            "meshtap_sink_samples_retried_total{endpoint=\"no-client-cert\"}",
        )
        .await
        .unwrap_or(0.0);
        if retried > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(retried > 0.0);
    assert_eq!(
        self_metric(
            addr,
            "meshtap_sink_samples_sent_total{endpoint=\"no-client-cert\"}"
        )
        .await,
        Some(0.0)
    );
    assert_eq!(
        self_metric(addr, "meshtap_sink_samples_sent_total{endpoint=\"mtls\"}").await,
        Some(1.0)
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_ca_file_of_a_scrape_job_stops_the_start_with_its_path() {
    let yaml = "scrape: {jobs: [{name: a, scheme: https, static_configs: [{targets: ['127.0.0.1:1']}], tls_config: {ca_file: /nonexistent/ca.pem}}]}";
    let config = meshtap_sink::SinkConfig::from_yaml(yaml, &|_| None).unwrap();
    let err = meshtap_sink::RunningSink::start(&config)
        .await
        .err()
        .expect("the start fails")
        .to_string();
    assert!(
        err.contains("scrape.jobs[0].tls_config: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}

fn pairs(labels: &[RecvLabel]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}
