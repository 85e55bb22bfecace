//! `prometheus:` / `prometheus_config:`: Prometheus' `global`, `scrape_configs` and
//! `remote_write` become scrape jobs and remote-write endpoints; keys meshtap does not
//! implement are refused by their path; secret files are read; `${1}` stays a regex group.

use meshtap_sink::scrape::config::PodRole;
use meshtap_sink::SinkConfig;

fn load(yaml: &str) -> Result<SinkConfig, String> {
    SinkConfig::from_yaml(yaml, &|var| (var == "TENANT").then(|| "t-1".to_owned()))
        .map_err(|e| e.to_string())
}

#[test]
fn unsupported_keys_are_refused_by_their_path() {
    for (yaml, expected) in [
        (
            "prometheus: {scrape_configs: [{job_name: a, kubernetes_sd_configs: [{role: pod, selectors: [{role: pod, label: 'a=b'}]}]}]}",
            "prometheus.scrape_configs[0].kubernetes_sd_configs[0].selectors: not supported by meshtap",
        ),
        (
            "prometheus: {scrape_configs: [{job_name: a, kubernetes_sd_configs: [{role: service}]}]}",
            "prometheus.scrape_configs[0].kubernetes_sd_configs[0].role: \"service\" not supported by meshtap (only \"pod\")",
        ),
        (
            "prometheus: {rule_files: [a.yml]}",
            "prometheus.rule_files: not supported by meshtap",
        ),
        (
            "prometheus: {global: {evaluation_interval: 1m}}",
            "prometheus.global.evaluation_interval: not supported by meshtap",
        ),
        (
            "prometheus: {remote_write: [{url: 'http://r:9/api/v1/push', queue_config: {min_shards: 2}}]}",
            "prometheus.remote_write[0].queue_config.min_shards: not supported by meshtap",
        ),
        (
            "prometheus: {remote_write: [{url: 'http://r:9/api/v1/push', send_exemplars: true}]}",
            "prometheus.remote_write[0].send_exemplars: not supported by meshtap (it sends no exemplars)",
        ),
        (
            "prometheus: {scrape_configs: [{job_name: a, scrape_interval: 5s, scrape_timeout: 10s, static_configs: [{targets: ['h:1']}]}]}",
            "prometheus.scrape_configs[0].scrape_timeout: 10s is greater than scrape_interval 5s",
        ),
        (
            "prometheus: {scrape_configs: [{job_name: a, static_configs: [{targets: ['h:1']}], relabel_configs: [{action: hashmod, target_label: x}]}]}",
            "prometheus.scrape_configs[0].relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            "prometheus: {}\nprometheus_config: p.yml",
            "prometheus_config: set either `prometheus:` or `prometheus_config:`, not both",
        ),
    ] {
        let error = load(yaml).unwrap_err();
        assert!(error.starts_with(expected), "{yaml}\n got: {error}\nwant: {expected}");
    }
    let error =
        load("prometheus: {scrape_configs: [{job_name: a, sample_limitt: 1}]}").unwrap_err();
    assert!(
        error.starts_with("prometheus.scrape_configs[0].sample_limitt: unknown field"),
        "{error}"
    );
}

#[test]
fn scrape_configs_become_jobs_with_global_defaults_and_regex_groups_kept() {
    let config = load(
        r#"
prometheus:
  global: {scrape_interval: 30s, external_labels: {cluster: east}}
  scrape_configs:
    - job_name: istio-mesh
      kubernetes_sd_configs: [{role: pod, namespaces: {names: [bookinfo]}}]
      honor_labels: true
      params: {format: [prometheus]}
      basic_auth: {username: u, password_file: /run/secret}
      relabel_configs:
        - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
          regex: '([^:]+)(?::\d+)?;(\d+)'
          replacement: '${1}:$2'
          target_label: __address__
    - job_name: istiod
      scrape_timeout: 5s
      static_configs: [{targets: ['istiod.istio-system.svc:15014']}]
  remote_write:
    - url: http://mimir:9009/api/v1/push
      headers: {X-Scope-OrgID: '${TENANT}'}
      authorization: {credentials: tok}
      queue_config: {max_shards: 2, capacity: 5000, max_samples_per_send: 500}
      metadata_config: {send_interval: 2m}
"#,
    )
    .unwrap();
    let scrape = config
        .scrape
        .expect("a scrape section from the Prometheus jobs");
    let names: Vec<&str> = scrape.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        ["istio-mesh", "istiod"],
        "no default istiod job added"
    );
    let mesh = &scrape.jobs[0];
    assert_eq!(mesh.interval.unwrap().to_string(), "30s");
    assert_eq!(mesh.timeout, None, "the sink's scrape.timeout applies");
    let sd = mesh.kubernetes_sd.as_ref().unwrap();
    assert_eq!(sd.role, PodRole::Pod);
    assert_eq!(sd.namespaces, ["bookinfo"]);
    assert!(mesh.honor_labels);
    assert_eq!(mesh.relabel_configs[0].replacement, "${1}:$2");
    assert_eq!(
        mesh.basic_auth.as_ref().unwrap().password_file.as_deref(),
        Some("/run/secret")
    );
    assert_eq!(scrape.jobs[1].timeout.unwrap().to_string(), "5s");
    let rw = &config.remote_write[0];
    assert_eq!(rw.headers["X-Scope-OrgID"], "t-1");
    assert_eq!(rw.bearer_token.as_deref(), Some("tok"));
    assert_eq!(rw.queue.lanes, 2);
    assert_eq!(rw.queue.capacity, 10_000);
    assert_eq!(rw.queue.max_samples_per_send, 500);
    assert_eq!(rw.metadata_interval.to_string(), "2m");
    assert_eq!(rw.external_labels["cluster"], "east");
}

#[test]
fn prometheus_config_file_is_read_beside_the_sink_config() {
    let dir = std::env::temp_dir().join(format!("meshtap-promconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "s3cret\n").unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "remote_write:\n- url: http://r:9/api/v1/push\n  basic_auth: {{password_file: {}}}\n",
            dir.join("token").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("sink.yaml"), "prometheus_config: prometheus.yml\n").unwrap();
    let config = SinkConfig::load(&dir.join("sink.yaml")).unwrap();
    let basic = config.remote_write[0].basic_auth.as_ref().unwrap();
    assert_eq!(
        (basic.username.as_str(), basic.password.as_str()),
        ("", "s3cret")
    );
    assert!(config.scrape.is_none());
    std::fs::write(dir.join("sink.yaml"), "prometheus_config: missing.yml\n").unwrap();
    let error = SinkConfig::load(&dir.join("sink.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("prometheus_config: cannot read") && error.contains("missing.yml"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn remote_write_credentials_come_from_one_key_each() {
    let dir = std::env::temp_dir().join(format!("meshtap-promcreds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "from-file\n").unwrap();
    let token = token.display();
    let endpoint = |entry: &str| {
        load(&format!(
            "prometheus: {{remote_write: [{{url: 'http://r:9/api/v1/push', {entry}}}]}}"
        ))
        .map(|config| config.remote_write[0].clone())
    };
    let one_kind = "remote_write[0].authorization: at most one of basic_auth, authorization and bearer_token may be set";
    for (entry, expected) in [
        (
            format!("basic_auth: {{username: u, password: p, password_file: {token}}}"),
            "remote_write[0].basic_auth: at most one of password and password_file may be set",
        ),
        (
            format!("bearer_token: t, bearer_token_file: {token}"),
            "remote_write[0]: at most one of bearer_token and bearer_token_file may be set",
        ),
        (
            format!("authorization: {{credentials: c, credentials_file: {token}}}"),
            "remote_write[0].authorization: at most one of credentials and credentials_file may be set",
        ),
        ("bearer_token: t, authorization: {credentials: c}".to_owned(), one_kind),
        ("basic_auth: {username: u}, authorization: {credentials: c}".to_owned(), one_kind),
    ] {
        let error = endpoint(&entry).unwrap_err();
        assert!(error.contains(expected), "{entry}: {error}");
    }
    let from_file = endpoint(&format!("bearer_token_file: {token}")).unwrap();
    assert_eq!(from_file.bearer_token.as_deref(), Some("from-file"));
    let basic = endpoint("basic_auth: {username: u, password: p}").unwrap();
    let basic = basic.basic_auth.unwrap();
    assert_eq!(
        (basic.username.as_str(), basic.password.as_str()),
        ("u", "p")
    );
    let bearer = endpoint(&format!("authorization: {{credentials_file: {token}}}")).unwrap();
    assert_eq!(bearer.bearer_token.as_deref(), Some("from-file"));
    assert!(!bearer.headers.contains_key("Authorization"));
    let other = endpoint("authorization: {type: Custom, credentials: c}").unwrap();
    assert_eq!(other.headers["Authorization"], "Custom c");
    assert_eq!(other.bearer_token, None);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn write_relabel_configs_are_taken_and_their_rules_checked() {
    let config = load(
        "prometheus: {remote_write: [{url: 'http://r:9/api/v1/push', write_relabel_configs: [{source_labels: [__name__], regex: 'go_.*', action: drop}]}]}",
    )
    .unwrap();
    let rules = &config.remote_write[0].write_relabel_configs;
    assert_eq!(rules.len(), 1);
    assert!(rules[0].regex.is_match("go_goroutines"));
    let refused = load(
        "prometheus: {remote_write: [{url: 'http://r:9/api/v1/push', write_relabel_configs: [{action: hashmod, target_label: x}]}]}",
    )
    .unwrap_err();
    assert!(
        refused.contains("remote_write[0].write_relabel_configs[0]: relabel configuration for hashmod requires non-zero modulus"),
        "{refused}"
    );
}
