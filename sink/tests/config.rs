//! Config loading: env expansion, defaults, key paths in errors, and `check-config` redaction
//! through the real binary.

use std::process::Command;
use std::time::Duration;

use meshtap_sink::SinkConfig;

fn env(name: &str) -> Option<String> {
    match name {
        "MIMIR_HOST" => Some("mimir.example".into()),
        "TENANT" => Some("team-a".into()),
        "BATCH" => Some("500".into()),
        "INSTANCE_ID" => Some("123456".into()),
        "FLAG" => Some("false".into()),
        _ => None,
    }
}

fn error_of(yaml: &str) -> String {
    match SinkConfig::from_yaml(yaml, &env) {
        Ok(c) => panic!("config accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_are_documented_values() {
    let c = SinkConfig::from_yaml("remote_write: [{url: 'http://m/api/v1/push'}]", &env).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:9091");
    assert_eq!(c.shutdown_timeout.get(), Duration::from_secs(10));
    assert_eq!(c.ingest.job, "integrations/istio");
    assert_eq!(c.ingest.stale_after_intervals, 3);
    assert!(c.ingest.tokens.is_empty());
    let q = &c.remote_write[0].queue;
    assert_eq!(q.max_samples_per_send, 2000);
    assert_eq!(q.batch_send_deadline.get(), Duration::from_secs(5));
    assert_eq!(q.min_backoff.get(), Duration::from_millis(30));
    assert_eq!(q.max_backoff.get(), Duration::from_secs(5));
    assert!(q.retry_on_429);
    assert!(c.remote_write[0].send_metadata);
    assert!(c.view.enabled);
}

#[test]
fn env_vars_expand_in_values_with_defaults() {
    let yaml = r#"
listen: "127.0.0.1:${PORT:-19091}"
remote_write:
  - url: "https://${MIMIR_HOST}/api/v1/push"
    headers: {X-Scope-OrgID: "${TENANT}"}
    queue: {max_samples_per_send: "${BATCH}"}
"#;
    let c = SinkConfig::from_yaml(yaml, &env).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:19091");
    assert_eq!(
        c.remote_write[0].url.as_str(),
        "https://mimir.example/api/v1/push"
    );
    assert_eq!(c.remote_write[0].headers["X-Scope-OrgID"], "team-a");
    assert_eq!(c.remote_write[0].queue.max_samples_per_send, 500);
    // A numeric-looking value stays a string where a string is expected, and becomes a number
    // or a boolean only where the field needs one.
    let yaml = r#"
remote_write:
  - url: http://m/
    basic_auth: {username: "${INSTANCE_ID}", password: "${INSTANCE_ID}"}
    send_metadata: "${FLAG}"
"#;
    let c = SinkConfig::from_yaml(yaml, &env).unwrap();
    let auth = c.remote_write[0].basic_auth.as_ref().unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("123456", "123456")
    );
    assert!(!c.remote_write[0].send_metadata);
    let e = error_of("ingest: {max_body_bytes: \"${INSTANCE_ID}x\"}");
    assert!(
        e.starts_with("ingest.max_body_bytes: invalid type: string \"123456x\""),
        "{e}"
    );
    let e = error_of("remote_write: [{url: 'http://${NOT_SET}/'}]");
    assert!(
        e.starts_with("remote_write[0].url: environment variable NOT_SET is not set"),
        "{e}"
    );
}

#[test]
fn unknown_keys_and_bad_values_name_their_path() {
    let e = error_of("remote_write: [{url: 'http://m/', queue: {max_backoff: 5x}}]");
    assert_eq!(
        e,
        "remote_write[0].queue.max_backoff: invalid duration \"5x\""
    );
    let e = error_of("remote_write: [{url: 'http://m/', queue: {max_bakoff: 5s}}]");
    assert!(
        e.starts_with("remote_write[0].queue.max_bakoff: unknown field `max_bakoff`"),
        "{e}"
    );
    let e = error_of("ingest: {max_body_bytes: lots}");
    assert!(e.starts_with("ingest.max_body_bytes: invalid type"), "{e}");
    let e = error_of("listen: nowhere");
    assert!(e.starts_with("listen: "), "{e}");
    let e = error_of("remote_write: [{url: 'ftp://m/'}]");
    assert!(e.starts_with("remote_write[0].url: must be an http"), "{e}");
    let e = error_of("remote_write: [{url: 'http://m/', headers: {Content-Type: x}}]");
    assert!(
        e.starts_with("remote_write[0].headers.Content-Type: this header is fixed"),
        "{e}"
    );
    let e = error_of("colour: blue");
    assert!(e.contains("unknown field `colour`"), "{e}");
}

#[test]
fn a_scrape_jobs_client_certificate_needs_its_key() {
    let e = error_of(
        "scrape: {jobs: [{name: a, scheme: https, static_configs: [{targets: ['h:1']}], tls_config: {cert_file: /c.pem}}]}",
    );
    assert_eq!(
        e,
        "scrape.jobs[0].tls_config: cert_file and key_file go together"
    );
    let e = error_of(
        "scrape: {jobs: [{name: a, static_configs: [{targets: ['h:1']}], bearer_token_file: ''}]}",
    );
    assert_eq!(e, "scrape.jobs[0].bearer_token_file: must not be empty");
}

#[test]
fn a_spool_needs_a_directory_and_a_size_it_understands() {
    let e = error_of("spool: {}");
    assert!(e.starts_with("spool: missing field `dir`"), "{e}");
    let e = error_of("spool: {dir: /var/spool, max_bytes: 2TiB}");
    assert!(
        e.starts_with("spool.max_bytes: \"2TiB\" is not a size"),
        "{e}"
    );
    let e = error_of("spool: {dir: /var/spool, segment_bytes: 1KiB}");
    assert_eq!(e, "spool.segment_bytes: must be at least 64KiB");
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = std::env::temp_dir().join(format!("meshtap-sink-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sink.yaml");
    std::fs::write(
        &path,
        r#"
ingest: {tokens: ["${INGEST_TOKEN}"]}
remote_write:
  - url: http://mimir:9009/api/v1/push
    basic_auth: {username: alice, password: pa55word}
    headers: {X-Scope-OrgID: team-a, Authorization-Extra: hush}
  - url: http://other/api/v1/push
    bearer_token: "t0ken-bearer"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("check-config")
        .arg(&path)
        .env("INGEST_TOKEN", "ingest-s3cret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["ingest-s3cret", "pa55word", "t0ken-bearer", "hush"] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
    }
    for shown in [
        "username: alice",
        "X-Scope-OrgID: team-a",
        "max_samples_per_send: 2000",
        "<redacted>",
    ] {
        assert!(stdout.contains(shown), "{shown} missing:\n{stdout}");
    }

    std::fs::write(
        &path,
        "remote_write: [{url: 'http://m/', queue: {min_backoff: soon}}]",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("remote_write[0].queue.min_backoff: invalid duration \"soon\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The URLs a user trial found accepted, each with what is wrong with it.
const BAD_URLS: [(&str, &str); 4] = [
    (
        "http://exa mple:99999/",
        "URL contains ' ' (encode it as %20)",
    ),
    (
        "http://127.0.0.1:99999/x",
        "invalid port (a port is 1 to 65535)",
    ),
    ("http://", "no host"),
    ("https://[::1", "invalid IPv6 address"),
];

#[test]
fn bad_urls_are_refused_at_load_naming_the_key() {
    for (url, problem) in BAD_URLS {
        for (yaml, key) in [
            (
                format!("remote_write: [{{url: '{url}'}}]"),
                "remote_write[0].url",
            ),
            (
                format!("logs: [{{url: 'http://l/'}}, {{url: '{url}'}}]"),
                "logs[1].url",
            ),
            (
                format!("scrape: {{jobs: [{{name: k, kubernetes_sd: {{api_server: '{url}'}}}}]}}"),
                "scrape.jobs[0].kubernetes_sd.api_server",
            ),
        ] {
            assert_eq!(
                error_of(&yaml),
                format!("{key}: {problem} in {url:?}"),
                "{yaml}"
            );
        }
    }
    let e = error_of("remote_write: [{url: 'http://alice:pa55@exa mple:99999/'}]");
    assert_eq!(
        e,
        "remote_write[0].url: URL contains ' ' (encode it as %20) in \"http://<redacted>@exa mple:99999/\""
    );
    let e = error_of("scrape: {jobs: [{name: a, static_configs: [{targets: ['h:99999']}]}]}");
    assert_eq!(
        e,
        "scrape.jobs[0].static_configs[0].targets[0]: \"h:99999\" is not host:port (invalid port (a port is 1 to 65535))"
    );
    let e = error_of("scrape: {jobs: [{name: a, static_configs: [{targets: ['bob:pw@h:1']}]}]}");
    assert!(
        e.starts_with("scrape.jobs[0].static_configs[0].targets[0]: user info is not allowed")
            && !e.contains("pw"),
        "{e}"
    );
    let e = error_of(
        "remote_write: [{url: 'http://alice:pa55@m/', basic_auth: {username: a, password: b}}]",
    );
    assert_eq!(
        e,
        "remote_write[0].url: has user info and basic_auth/bearer_token is set too (use one)"
    );
}

/// Runs `meshtap-sink check-config` on `yaml`; returns (success, stdout, stderr).
fn check_config(name: &str, yaml: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("meshtap-sink-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sink.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_each_bad_url_saying_why_once() {
    for (url, problem) in BAD_URLS {
        let url = url.replacen("://", "://alice:pa55@", 1);
        let (ok, stdout, stderr) =
            check_config("bad-url", &format!("remote_write: [{{url: '{url}'}}]\n"));
        assert!(!ok, "{url} accepted:\n{stdout}");
        assert_eq!(stderr.matches(problem).count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("remote_write[0].url: {problem} in ")),
            "{stderr}"
        );
        assert!(
            !stderr.contains("pa55") && !stderr.contains("alice"),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_an_empty_file_and_shows_a_minimal_one() {
    for empty in ["", "# nothing yet\n", "{}\n"] {
        let (ok, stdout, stderr) = check_config("empty", empty);
        assert!(!ok, "{empty:?} accepted:\n{stdout}");
        assert!(stderr.contains("the config is empty"), "{stderr}");
        assert!(
            stderr.contains("remote_write:\n    - url: http://"),
            "{stderr}"
        );
    }
    let (ok, _, stderr) = check_config("listen-only", "listen: 127.0.0.1:9091\n");
    assert!(ok, "{stderr}");
}

#[test]
fn a_spool_directory_error_names_its_cause_once() {
    let dir = std::env::temp_dir().join(format!("meshtap-sink-spool-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let path = dir.join("sink.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\nspool: {{dir: '{}/spool'}}\nremote_write: [{{url: 'http://127.0.0.1:9/api/v1/push'}}]\n",
            file.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("meshtap-sink: spool: {}/spool", file.display())),
        "{stderr}"
    );
    assert_eq!(last.matches("Not a directory").count(), 1, "{stderr}");
}

#[test]
fn verify_identity_is_off_by_default_and_a_boolean() {
    let load = |yaml: &str| SinkConfig::from_yaml(yaml, &env);
    assert!(!load("ingest: {job: j}").unwrap().ingest.verify_identity);
    assert!(
        load("ingest: {verify_identity: true}")
            .unwrap()
            .ingest
            .verify_identity
    );
    let e = error_of("ingest: {verify_identity: sometimes}");
    assert!(e.starts_with("ingest.verify_identity: "), "{e}");
}

fn load_scrape(yaml: &str) -> Result<SinkConfig, String> {
    SinkConfig::from_yaml(yaml, &|_| None).map_err(|e| e.to_string())
}

#[test]
fn scrape_section_defaults_to_istiod_and_bad_keys_name_their_path() {
    let config = load_scrape("scrape: {}").unwrap();
    let scrape = config.scrape.expect("section present");
    assert_eq!(scrape.jobs.len(), 1);
    assert_eq!(scrape.jobs[0].name, "istiod");
    assert!(load_scrape("listen: 0.0.0.0:9091")
        .unwrap()
        .scrape
        .is_none());

    let e = load_scrape("scrape: {merge: {prefer: newest}}").unwrap_err();
    assert!(
        e.starts_with("scrape.merge.prefer: unknown variant `newest`"),
        "{e}"
    );
    let merge = load_scrape("scrape: {merge: {prefer: scrape}}").unwrap();
    assert_eq!(
        merge.scrape.unwrap().merge.prefer,
        meshtap_sink::scrape::config::Prefer::Scrape
    );
    let e = load_scrape("scrape: {jobs: [{name: a}]}").unwrap_err();
    assert_eq!(
        e,
        "scrape.jobs[0]: a job needs static_configs or kubernetes_sd"
    );
    let e = load_scrape("scrape: {jobs: [{name: a, static_configs: [{targets: ['h:1']}]}, {name: a, static_configs: [{targets: ['h:2']}]}]}").unwrap_err();
    assert_eq!(e, "scrape.jobs[1].name: two jobs are named \"a\"");
    let e = load_scrape("scrape: {jobs: [{name: a, static_configs: [{targets: ['h:1']}], metric_relabel_configs: [{action: labeldrop, target_label: x}]}]}").unwrap_err();
    assert_eq!(
        e,
        "scrape.jobs[0].metric_relabel_configs[0]: labeldrop action requires only 'regex', and no other fields"
    );
    let e = load_scrape("scrape: {jobs: [{name: a, static_configs: [{targets: ['h:1']}], relabel_configs: [{action: hashmod, target_label: x}]}]}").unwrap_err();
    assert_eq!(
        e,
        "scrape.jobs[0].relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus"
    );
    let e = load_scrape("scrape: {jobs: [{name: a, static_configs: [{targets: ['h:1']}], relabel_configs: [{action: rewrite}]}]}").unwrap_err();
    assert!(
        e.starts_with(
            "scrape.jobs[0].relabel_configs[0].action: unknown relabel action \"rewrite\""
        ),
        "{e}"
    );
}

#[test]
fn scrape_sharding_keys_expand_and_name_their_path() {
    let yaml = "scrape: {sharding: {service: meshtap-sink-members, namespace: meshtap-system, self: '${POD_NAME}'}}";
    let config = SinkConfig::from_yaml(yaml, &|var| {
        (var == "POD_NAME").then(|| "meshtap-sink-7d9f-abcde".to_owned())
    })
    .unwrap();
    let sharding = config.scrape.unwrap().sharding.unwrap();
    assert_eq!(sharding.member, "meshtap-sink-7d9f-abcde");
    assert_eq!(sharding.service, "meshtap-sink-members");
    let e = load_scrape("scrape: {sharding: {service: s, namespace: n, self: ''}}").unwrap_err();
    assert_eq!(e, "scrape.sharding.self: must not be empty");
    let e = load_scrape("scrape: {sharding: {service: s, namespace: n}}").unwrap_err();
    assert!(
        e.starts_with("scrape.sharding: missing field `self`"),
        "{e}"
    );
    let e = load_scrape("scrape: {sharding: {service: s, namespace: n, self: p, api_server: x}}")
        .unwrap_err();
    assert_eq!(
        e,
        "scrape.sharding.api_server: must be an http:// or https:// URL, got \"x\""
    );
    let e = load_scrape("scrape: {sharding: {service: s, namespace: n, self: p, api_server: 'https://u:kube-pw@k8s:6443'}}")
        .unwrap_err();
    assert!(
        e.starts_with("scrape.sharding.api_server: user info is not used"),
        "{e}"
    );
    assert!(!e.contains("kube-pw"), "{e}");
    let e = load_scrape("scrape: {sharding: {service: s, namespace: n, self: p, replicas: 3}}")
        .unwrap_err();
    assert!(
        e.starts_with("scrape.sharding.replicas: unknown field `replicas`"),
        "{e}"
    );
}
