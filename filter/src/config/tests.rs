//! Tests of `pluginConfig` parsing: defaults, every key, refusals with the key's path.

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn empty_config_gives_defaults() {
    let c = FilterConfig::parse(b"", no_env).unwrap();
    assert_eq!(c.sink_cluster, DEFAULT_SINK_CLUSTER);
    assert_eq!(c.sink_authority, DEFAULT_SINK_AUTHORITY);
    assert_eq!(c.sink_path, "/v1/reports");
    assert_eq!(c.report_interval, Duration::from_secs(10));
    assert_eq!(c.report_timeout, Duration::from_secs(5));
    assert_eq!(c.ingest_token, None);
    assert_eq!(c.reporter, None);
    assert_eq!(c.max_series, 10_000);
    assert_eq!(c.metrics, EnabledMetrics::all());
    assert_eq!(c.plugin_type, PluginType::Http);
    assert_eq!(c.access_log, None);
    assert_eq!(c.series_idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(FilterConfig::parse(b"{}", no_env).unwrap(), c);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn series_idle_timeout_is_off_or_at_least_two_intervals() {
    let timeout = |json: &str| FilterConfig::parse(json.as_bytes(), no_env);
    for off in ["0", "off", "0s"] {
        let json = format!(r#"{{"series_idle_timeout":"{off}"}}"#);
        assert_eq!(timeout(&json).unwrap().series_idle_timeout, None, "{off}");
    }
    let c = timeout(r#"{"report_interval":"5s","series_idle_timeout":"10s"}"#).unwrap();
    assert_eq!(c.series_idle_timeout, Some(Duration::from_secs(10)));
    for bad in [
        r#"{"report_interval":"5s","series_idle_timeout":"9s"}"#,
        r#"{"series_idle_timeout":"never"}"#,
    ] {
        assert!(timeout(bad).is_err(), "{bad}");
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn full_config_is_read() {
    let json = br#"{"sink_cluster":"sink","sink_authority":"sink:9091","sink_path":"/in",
        "report_interval":"1m","report_timeout":"1500ms","ingest_token":"t0k",
        "reporter":"waypoint","disable_host_header_fallback":true,"max_series":50,
        "metrics":{"request_bytes":false},"access_log":{"enabled":false},"type":"NETWORK"}"#;
    let c = FilterConfig::parse(json, no_env).unwrap();
    assert_eq!(c.sink_cluster, "sink");
    assert_eq!(c.plugin_type, PluginType::Network);
    assert_eq!(c.sink_path, "/in");
    assert_eq!(c.report_interval, Duration::from_secs(60));
    assert_eq!(c.report_timeout, Duration::from_millis(1500));
    assert_eq!(c.ingest_token.as_deref(), Some("t0k"));
    assert_eq!(c.reporter, Some(Reporter::Waypoint));
    assert!(c.disable_host_header_fallback);
    assert_eq!(c.max_series, 50);
    assert!(!c.metrics.request_bytes && c.metrics.requests_total && c.metrics.response_bytes);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn unknown_keys_are_refused() {
    let e = FilterConfig::parse(br#"{"sink_clustr":"x"}"#, no_env).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Json(m) if m.contains("sink_clustr")),
        "{e}"
    );
    let e = FilterConfig::parse(br#"{"metrics":{"requests":true}}"#, no_env).unwrap_err();
    assert!(matches!(e, ConfigError::Json(_)));
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn bad_values_are_refused() {
    let cases: [&[u8]; 10] = [
        br#"{"type":"TCP"}"#,
        br#"{"report_interval":"10"}"#,
        br#"{"report_interval":"ten seconds"}"#,
        br#"{"report_interval":"500ms"}"#,
        br#"{"report_timeout":"20s"}"#,
        br#"{"reporter":"client"}"#,
        br#"{"max_series":0}"#,
        br#"{"sink_path":"v1"}"#,
        br#"{"sink_cluster":""}"#,
        br#"{"report_interval":10}"#,
    ];
    for json in cases {
        assert!(
            FilterConfig::parse(json, no_env).is_err(),
            "{}",
            String::from_utf8_lossy(json)
        );
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn overrides_and_label_limits_are_checked() {
    let json = br#"{"overrides":[
        {"metric":"istio_requests_total","tags_to_remove":["destination_principal"]},
        {"metric":"ALL","tags_to_remove":["response_flags"]},
        {"metric":"istio_tcp_sent_bytes_total","drop":true}],
        "label_limits":{"destination_service":100}}"#;
    let c = FilterConfig::parse(json, no_env).unwrap();
    assert!(!c.metrics.tcp_sent_bytes && c.metrics.tcp_received_bytes);
    assert_eq!(
        c.tags_to_remove[0],
        (
            "istio_requests_total".to_string(),
            vec!["destination_principal".to_string()]
        )
    );
    let flags: Vec<_> = c.tags_to_remove[1..]
        .iter()
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(
        flags.len(),
        8,
        "response_flags: 4 HTTP + 4 TCP families, not gRPC"
    );
    assert!(!flags.contains(&"istio_request_messages_total"));
    assert_eq!(c.label_caps, vec![(14, 100)]);
    for (bad, path) in [
        (
            r#"{"overrides":[{"metric":"requests"}]}"#,
            "overrides[0].metric",
        ),
        (
            r#"{"overrides":[{"metric":"istio_request_messages_total","tags_to_remove":["response_code"]}]}"#,
            "overrides[0].tags_to_remove",
        ),
        (r#"{"label_limits":{"path":10}}"#, "label_limits.path"),
        (
            r#"{"label_limits":{"destination_service":0}}"#,
            "label_limits.destination_service",
        ),
    ] {
        match FilterConfig::parse(bad.as_bytes(), no_env) {
            Err(ConfigError::Customisation { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn plugin_type_is_read_even_from_a_refused_config() {
    let refused = br#"{"type":"NETWORK","sink_clustr":"x"}"#;
    assert!(FilterConfig::parse(refused, no_env).is_err());
    assert_eq!(PluginType::of_config(refused), PluginType::Network);
    assert_eq!(PluginType::of_config(b"not json"), PluginType::Http);
    let network_logs = br#"{"type":"NETWORK","access_log":{"enabled":true}}"#;
    assert!(matches!(
        FilterConfig::parse(network_logs, no_env),
        Err(ConfigError::Value {
            key: "access_log.enabled",
            ..
        })
    ));
    assert_eq!(
        PluginType::of_config(br#"{"type":"HTTP"}"#),
        PluginType::Http
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn access_log_section_is_read_with_defaults() {
    let on = FilterConfig::parse(br#"{"access_log":{"enabled":true}}"#, no_env).unwrap();
    assert_eq!(
        on.access_log,
        Some(AccessLogConfig {
            sample_rate: 1.0,
            only_errors: false,
            max_per_interval: DEFAULT_ACCESS_LOG_MAX_PER_INTERVAL,
        })
    );
    let json = br#"{"access_log":{"enabled":true,"sample_rate":0.25,"only_errors":true,
        "max_per_interval":50}}"#;
    assert_eq!(
        FilterConfig::parse(json, no_env).unwrap().access_log,
        Some(AccessLogConfig {
            sample_rate: 0.25,
            only_errors: true,
            max_per_interval: 50,
        })
    );
    let off = br#"{"access_log":{"enabled":false,"sample_rate":0.5}}"#;
    assert_eq!(FilterConfig::parse(off, no_env).unwrap().access_log, None);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn access_log_bad_values_are_refused_by_key() {
    let value = |json: &[u8]| match FilterConfig::parse(json, no_env).unwrap_err() {
        ConfigError::Value { key, .. } => key,
        other => panic!("{other}"),
    };
    assert_eq!(
        value(br#"{"access_log":{"enabled":true,"sample_rate":1.5}}"#),
        "access_log.sample_rate"
    );
    assert_eq!(
        value(br#"{"access_log":{"enabled":false,"sample_rate":-0.1}}"#),
        "access_log.sample_rate"
    );
    assert_eq!(
        value(br#"{"access_log":{"enabled":true,"max_per_interval":0}}"#),
        "access_log.max_per_interval"
    );
    let e = FilterConfig::parse(
        br#"{"access_log":{"enabled":true,"encoding":"json"}}"#,
        no_env,
    )
    .unwrap_err();
    assert!(
        matches!(&e, ConfigError::Json(m) if m.contains("encoding")),
        "{e}"
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn token_comes_from_the_vm_env() {
    let env = |k: &str| (k == "MESHTAP_INGEST_TOKEN").then(|| "from-env".to_string());
    let c = FilterConfig::parse(br#"{"ingest_token_env":"MESHTAP_INGEST_TOKEN"}"#, env).unwrap();
    assert_eq!(c.ingest_token.as_deref(), Some("from-env"));
    assert_eq!(
        FilterConfig::parse(br#"{"ingest_token_env":"OTHER"}"#, env).unwrap_err(),
        ConfigError::TokenEnvMissing("OTHER".into())
    );
    assert_eq!(
        FilterConfig::parse(br#"{"ingest_token":"a","ingest_token_env":"B"}"#, env).unwrap_err(),
        ConfigError::TwoTokens
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn durations_follow_istio_units() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("1.s"), None);
    assert_eq!(parse_duration("0.1ms"), None);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn tags_add_dimensions_in_config_order_and_limits_reach_them() {
    let json = br#"{"overrides":[
        {"metric":"istio_requests_total","tags":{
            "user":"request.headers['x-user']",
            "destination_service":"request.host",
            "api":"'v2'"}},
        {"metric":"ALL","tags":{"user":"request.headers['x-user']"}}],
        "label_limits":{"user":50,"destination_service":10}}"#;
    let c = FilterConfig::parse(json, no_env).unwrap();
    let names: Vec<_> = c
        .dimensions
        .columns
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["user", "destination_service", "api"]);
    let total = c.dimensions.layout("istio_requests_total");
    let appended: Vec<_> = total[25..].iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(appended, ["user", "api"], "in config order");
    assert_eq!(total[14], ("destination_service".to_string(), 26));
    let bytes = c.dimensions.layout("istio_response_bytes");
    assert_eq!(bytes.len(), 26, "ALL: the four request families");
    assert_eq!(
        c.label_caps,
        vec![(14, 10), (26, 10), (25, 50)],
        "a cap covers the standard label and its upserted column"
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn bad_tags_are_refused_with_their_path() {
    for (bad, path) in [
        (
            r#"{"overrides":[{"metric":"istio_requests_total","tags":{"user":"request.size"}}]}"#,
            "overrides[0].tags.user",
        ),
        (
            r#"{"overrides":[{"metric":"istio_requests_total","tags":{"le":"'x'"}}]}"#,
            "overrides[0].tags.le",
        ),
        (
            r#"{"overrides":[{"metric":"istio_tcp_sent_bytes_total","tags":{"user":"'x'"}}]}"#,
            "overrides[0].tags",
        ),
        (
            r#"{"overrides":[{"metric":"istio_requests_total","tags":{"response_code":"'x'"},"tags_to_remove":["response_code"]}]}"#,
            "overrides[0].tags.response_code",
        ),
        (r#"{"label_limits":{"user":10}}"#, "label_limits.user"),
    ] {
        match FilterConfig::parse(bad.as_bytes(), no_env) {
            Err(ConfigError::Customisation { path: p, .. }) => assert_eq!(p, path, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let twice = br#"{"overrides":[{"metric":"ALL","tags":{"a":"'x'","a":"'y'"}}]}"#;
    assert!(matches!(
        FilterConfig::parse(twice, no_env),
        Err(ConfigError::Json(m)) if m.contains("given twice")
    ));
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn histogram_buckets_per_family_beat_istiocustom() {
    let json = br#"{"histogram_buckets":{
        "istiocustom":[1,5,10],
        "istio_request_bytes":[100,1000.5]}}"#;
    let c = FilterConfig::parse(json, no_env).unwrap();
    assert_eq!(c.histogram_bounds.duration().as_slice(), [1.0, 5.0, 10.0]);
    assert_eq!(
        c.histogram_bounds.request_bytes().as_slice(),
        [100.0, 1000.5]
    );
    assert_eq!(
        c.histogram_bounds.response_bytes().as_slice(),
        [1.0, 5.0, 10.0]
    );
    let d = FilterConfig::parse(b"{}", no_env).unwrap();
    assert_eq!(
        d.histogram_bounds.duration().as_slice(),
        meshtap_report::schema::DEFAULT_BUCKETS
    );
    for (bad, path) in [
        (
            r#"{"histogram_buckets":{"istio_requests_total":[1]}}"#,
            "histogram_buckets.istio_requests_total",
        ),
        (
            r#"{"histogram_buckets":{"istiocustom":[5,1]}}"#,
            "histogram_buckets.istiocustom",
        ),
        (
            r#"{"histogram_buckets":{"istiocustom":[]}}"#,
            "histogram_buckets.istiocustom",
        ),
        (
            r#"{"histogram_buckets":{"istiocustom":[0,1]}}"#,
            "histogram_buckets.istiocustom",
        ),
        (
            r#"{"histogram_buckets":{"istiocustom":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}}"#,
            "histogram_buckets.istiocustom",
        ),
    ] {
        match FilterConfig::parse(bad.as_bytes(), no_env) {
            Err(ConfigError::Customisation { path: p, .. }) => assert_eq!(p, path, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
