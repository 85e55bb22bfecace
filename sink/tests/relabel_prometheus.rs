//! Prometheus' `relabel_config` semantics, case by case, each expectation taken from
//! Prometheus' documentation of the action (and, for `hashmod`, from the values Prometheus'
//! own tests pin), not from this implementation: defaults (`separator: ;`, `regex: (.*)`,
//! `replacement: $1`, `action: replace`), fully anchored regexes whose `.` matches newlines,
//! `$1`/`${1}`/named groups in `replacement` and `target_label`, an empty result deleting the
//! target, missing labels read as empty, and the config checks Prometheus makes.

use meshtap_sink::scrape::relabel::{relabel, Labels, RelabelConfig};

fn rules(yaml: &str) -> Vec<RelabelConfig> {
    let rules: Vec<RelabelConfig> = serde_yaml::from_str(yaml).expect("rules parse");
    for rule in &rules {
        rule.check().expect("rules are valid");
    }
    rules
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The relabeled labels, sorted, or `None` when the set is dropped.
fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
    let mut l = labels(input);
    relabel(&rules(yaml), &mut l).then(|| {
        l.sort();
        l
    })
}

fn sorted(pairs: &[(&str, &str)]) -> Option<Labels> {
    let mut l = labels(pairs);
    l.sort();
    Some(l)
}

#[test]
fn replace_defaults_join_sources_with_semicolon_and_write_the_whole_value() {
    assert_eq!(
        run(
            "- {source_labels: [a, b], target_label: c}",
            &[("a", "x"), ("b", "y")]
        ),
        sorted(&[("a", "x"), ("b", "y"), ("c", "x;y")])
    );
    // A missing source label is the empty string.
    assert_eq!(
        run(
            "- {source_labels: [a, missing], target_label: c}",
            &[("a", "x")]
        ),
        sorted(&[("a", "x"), ("c", "x;")])
    );
    // No source labels, only a replacement: sets a constant.
    assert_eq!(
        run(
            "- {target_label: job, replacement: integrations/istio}",
            &[]
        ),
        sorted(&[("job", "integrations/istio")])
    );
}

#[test]
fn replace_expands_groups_in_replacement_and_target_label() {
    let yaml = r#"
- source_labels: [__meta_kubernetes_pod_annotation_x]
  regex: '(\w+)=(.+)'
  target_label: 'label_${1}'
  replacement: '$2-${2}'
"#;
    assert_eq!(
        run(yaml, &[("__meta_kubernetes_pod_annotation_x", "team=mesh")]),
        sorted(&[
            ("__meta_kubernetes_pod_annotation_x", "team=mesh"),
            ("label_team", "mesh-mesh")
        ])
    );
    let named = "- {source_labels: [a], regex: '(?P<host>[^:]+):\\d+', target_label: h, replacement: '$host'}";
    assert_eq!(
        run(named, &[("a", "10.0.0.1:80")]),
        sorted(&[("a", "10.0.0.1:80"), ("h", "10.0.0.1")])
    );
}

#[test]
fn replace_without_a_match_or_to_an_invalid_name_changes_nothing_and_empty_deletes() {
    let input = [("a", "abc"), ("t", "keep")];
    assert_eq!(
        run(
            "- {source_labels: [a], regex: 'x.*', target_label: t}",
            &input
        ),
        sorted(&input)
    );
    // The expanded target `1abc` is not a label name: the rule is skipped.
    assert_eq!(
        run(
            "- {source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: v}",
            &[("a", "1abc")]
        ),
        sorted(&[("a", "1abc")])
    );
    assert_eq!(
        run(
            "- {source_labels: [a], regex: 'abc', target_label: t, replacement: ''}",
            &input
        ),
        sorted(&[("a", "abc")])
    );
}

#[test]
fn regexes_are_anchored_and_dot_matches_newline() {
    assert_eq!(
        run(
            "- {source_labels: [a], regex: 'b', action: keep}",
            &[("a", "abc")]
        ),
        None
    );
    assert!(run(
        "- {source_labels: [a], regex: 'a.c', action: keep}",
        &[("a", "a\nc")]
    )
    .is_some());
    assert_eq!(
        run(
            "- {source_labels: [a], regex: 'ab|abc', action: drop}",
            &[("a", "abc")]
        ),
        None
    );
}

#[test]
fn keep_and_drop_read_missing_labels_as_empty() {
    let seed = "- {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: 'true'}";
    assert_eq!(run(seed, &[("__address__", "a:1")]), None);
    assert!(run(
        seed,
        &[(
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
            "true"
        )]
    )
    .is_some());
    assert_eq!(
        run(
            "- {source_labels: [missing], regex: '', action: drop}",
            &[("a", "1")]
        ),
        None
    );
    // `action` is read case-insensitively, as Prometheus reads it.
    assert!(run(
        "- {source_labels: [a], regex: '1', action: Keep}",
        &[("a", "1")]
    )
    .is_some());
}

#[test]
fn keepequal_and_dropequal_compare_with_the_target_label() {
    let same = [("a", "x"), ("b", "x")];
    let differ = [("a", "x"), ("b", "y")];
    assert!(run(
        "- {source_labels: [a], target_label: b, action: keepequal}",
        &same
    )
    .is_some());
    assert_eq!(
        run(
            "- {source_labels: [a], target_label: b, action: keepequal}",
            &differ
        ),
        None
    );
    assert_eq!(
        run(
            "- {source_labels: [a], target_label: b, action: dropequal}",
            &same
        ),
        None
    );
    assert!(run(
        "- {source_labels: [a], target_label: b, action: dropequal}",
        &differ
    )
    .is_some());
}

#[test]
fn hashmod_takes_the_md5_sum_modulo_as_prometheus_pins_it() {
    let rule = "- {source_labels: [c], target_label: d, modulus: 1000, action: hashmod}";
    assert_eq!(
        run(rule, &[("c", "baz")]),
        sorted(&[("c", "baz"), ("d", "976")])
    );
    let rule = "- {source_labels: [a], target_label: b, modulus: 1000, action: hashmod}";
    assert_eq!(
        run(rule, &[("a", "foo\nbar")]),
        sorted(&[("a", "foo\nbar"), ("b", "734")])
    );
}

#[test]
fn labelmap_labeldrop_labelkeep_lowercase_uppercase() {
    let yaml = r#"
- {action: labelmap, regex: '__meta_kubernetes_pod_label_(.+)'}
- {action: labelmap, regex: '__meta_kubernetes_pod_annotation_(.+)', replacement: 'ann_$1'}
- {action: labeldrop, regex: '__meta_.*'}
- {source_labels: [app], target_label: app_upper, action: uppercase}
- {source_labels: [ann_team], target_label: team, action: lowercase}
"#;
    let out = run(
        yaml,
        &[
            ("__meta_kubernetes_pod_label_app", "Reviews"),
            ("__meta_kubernetes_pod_annotation_team", "MESH"),
            ("pod", "p"),
        ],
    );
    assert_eq!(
        out,
        sorted(&[
            ("ann_team", "MESH"),
            ("app", "Reviews"),
            ("app_upper", "REVIEWS"),
            ("pod", "p"),
            ("team", "mesh"),
        ])
    );
    assert_eq!(
        run(
            "- {action: labelkeep, regex: '__name__|job'}",
            &[("__name__", "up"), ("job", "j"), ("x", "1")]
        ),
        sorted(&[("__name__", "up"), ("job", "j")])
    );
}

#[test]
fn configs_prometheus_refuses_are_refused_with_its_words() {
    let check = |yaml: &str| {
        let rules: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        rules[0].check().unwrap_err()
    };
    assert_eq!(
        check("- {action: hashmod, target_label: x}"),
        "relabel configuration for hashmod requires non-zero modulus"
    );
    assert_eq!(
        check("- {source_labels: [a]}"),
        "relabel configuration for replace action requires 'target_label' value"
    );
    assert_eq!(
        check("- {action: lowercase, target_label: 'a-b'}"),
        "\"a-b\" is invalid 'target_label' for lowercase action"
    );
    assert_eq!(
        check("- {action: uppercase, target_label: a, replacement: x}"),
        "'replacement' can not be set for uppercase action"
    );
    assert_eq!(
        check("- {action: keepequal, source_labels: [a], target_label: b, regex: x}"),
        "keepequal action requires only 'source_labels' and `target_label`, and no other fields"
    );
    assert_eq!(
        check("- {action: labelkeep, source_labels: [a]}"),
        "labelkeep action requires only 'regex', and no other fields"
    );
    let bad: Result<Vec<RelabelConfig>, _> = serde_yaml::from_str("- {action: rewrite}");
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("unknown relabel action \"rewrite\""));
}
