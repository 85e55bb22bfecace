use super::*;

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn expressions_of_the_supported_forms_parse() {
    let cases = [
        (
            "request.headers['x-User']",
            Source::RequestHeader("x-user".into()),
        ),
        (
            r#"request.headers["x-tenant"]"#,
            Source::RequestHeader("x-tenant".into()),
        ),
        (
            "request.headers[':authority']",
            Source::RequestHeader(":authority".into()),
        ),
        (
            "response.headers['x-cache']",
            Source::ResponseHeader("x-cache".into()),
        ),
        ("request.host", Source::Property(b"request\0host")),
        (" upstream.address ", Source::Property(b"upstream\0address")),
        ("xds.cluster_name", Source::Property(b"xds\0cluster_name")),
        (
            "connection.requested_server_name",
            Source::Property(b"connection\0requested_server_name"),
        ),
        (
            "node.metadata['MESH_ID']",
            Source::NodeMetadata("MESH_ID".into()),
        ),
        ("'canary'", Source::Literal("canary".into())),
        (r#""""#, Source::Literal(String::new())),
    ];
    for (expression, want) in cases {
        assert_eq!(parse_expression(expression), Ok(want), "{expression}");
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn anything_else_is_refused() {
    for bad in [
        "request.headers[x-user]",
        "request.headers['']",
        "request.headers['a b']",
        "request.headers['x'",
        "response.code",
        "request.headers['x'] + 'y'",
        "'it's'",
        "filter_state.upstream_peer",
        "node.metadata[]",
        "",
    ] {
        assert!(parse_expression(bad).is_err(), "{bad:?} must be refused");
    }
    let message = parse_expression("request.size").unwrap_err();
    assert!(message.contains("request.url_path"), "{message}");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn upserts_replace_standard_labels_and_append_new_ones_per_family() {
    let mut d = Dimensions::default();
    assert!(d.is_empty());
    d.upsert(REQUESTS_TOTAL, "user", "request.headers['x-user']")
        .unwrap();
    d.upsert(REQUESTS_TOTAL, "destination_service", "request.host")
        .unwrap();
    d.upsert(REQUESTS_TOTAL, "tier", "'gold'").unwrap();
    d.upsert(REQUEST_DURATION, "user", "request.headers['x-user']")
        .unwrap();
    assert_eq!(
        d.columns.len(),
        3,
        "the same name and expression share a column"
    );
    let total = d.layout(REQUESTS_TOTAL);
    assert_eq!(total.len(), 27);
    let service = HTTP_LABELS
        .iter()
        .position(|l| *l == "destination_service")
        .unwrap();
    assert_eq!(total[service], ("destination_service".to_string(), 26));
    assert_eq!(total[25], ("user".to_string(), 25));
    assert_eq!(total[26], ("tier".to_string(), 27));
    let duration = d.layout(REQUEST_DURATION);
    assert_eq!(duration.len(), 26);
    assert_eq!(duration[service].1, service, "not upserted for this family");
    let bytes = d.layout(REQUEST_BYTES);
    assert_eq!(bytes.len(), 25);
    assert!(bytes.iter().enumerate().all(|(i, (_, p))| *p == i));
    assert_eq!(d.positions_named("user").collect::<Vec<_>>(), [25]);
    d.upsert(REQUESTS_TOTAL, "user", "response.headers['x-user']")
        .unwrap();
    assert_eq!(
        d.layout(REQUESTS_TOTAL)[25],
        ("user".to_string(), 28),
        "later wins"
    );
    assert_eq!(d.positions_named("user").collect::<Vec<_>>(), [25, 28]);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn bad_names_and_too_many_columns_are_refused() {
    let mut d = Dimensions::default();
    for bad in ["le", "__name", "1x", "a-b", ""] {
        assert!(d.upsert(REQUESTS_TOTAL, bad, "'v'").is_err(), "{bad:?}");
    }
    for i in 0..MAX_EXTRA_DIMENSIONS {
        d.upsert(REQUESTS_TOTAL, &format!("l{i}"), "'v'").unwrap();
    }
    let err = d.upsert(REQUESTS_TOTAL, "one_more", "'v'").unwrap_err();
    assert!(err.contains("at most"), "{err}");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn values_default_to_unknown_and_are_bounded() {
    assert_eq!(value_of(None), MISSING_VALUE);
    assert_eq!(value_of(Some(b"")), "");
    assert_eq!(value_of(Some(b"alice")), "alice");
    let long = "é".repeat(MAX_VALUE_BYTES);
    let cut = value_of(Some(long.as_bytes()));
    assert!(cut.len() <= MAX_VALUE_BYTES && cut.len() >= MAX_VALUE_BYTES - 1);
    assert!(cut.chars().all(|c| c == 'é'));
    let mut a = Vec::new();
    append_key(&mut a, None);
    let mut b = Vec::new();
    append_key(&mut b, Some(b""));
    assert_ne!(a, b, "absent and empty differ");
    let (mut c, mut e) = (Vec::new(), Vec::new());
    append_key(&mut c, Some(b"ab"));
    append_key(&mut c, Some(b"c"));
    append_key(&mut e, Some(b"a"));
    append_key(&mut e, Some(b"bc"));
    assert_ne!(c, e, "values cannot run into each other");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn node_metadata_is_resolved_once_into_a_literal() {
    let mut d = Dimensions::default();
    d.upsert(REQUESTS_TOTAL, "mesh", "node.metadata['MESH_ID']")
        .unwrap();
    d.upsert(REQUESTS_TOTAL, "zone", "node.metadata['ZONE']")
        .unwrap();
    d.resolve_node_metadata(|key| (key == "MESH_ID").then(|| "mesh-1".to_string()));
    assert_eq!(d.columns[0].source, Source::Literal("mesh-1".into()));
    assert_eq!(d.columns[1].source, Source::Literal(MISSING_VALUE.into()));
}
