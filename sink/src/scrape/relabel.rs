//! Prometheus `relabel_config` for the actions `replace`, `keep`, `drop`, `labelmap` and
//! `labeldrop`, with Prometheus' defaults (`separator: ";"`, `regex: "(.*)"`,
//! `replacement: "$1"`, `action: replace`) and its fully anchored regular expressions.
//!
//! Owns the rule model and its application to one label list; it must not know where the labels
//! come from (targets or scraped series).

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A label list being relabeled: `(name, value)`, names unique.
pub type Labels = Vec<(String, String)>;

/// The supported actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    Labelmap,
    Labeldrop,
}

/// A regular expression anchored at both ends, as Prometheus anchors relabel regexes.
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    compiled: Regex,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<AnchoredRegex, regex::Error> {
        Ok(AnchoredRegex {
            source: source.to_owned(),
            compiled: Regex::new(&format!("^(?:{source})$"))?,
        })
    }
}

impl Default for AnchoredRegex {
    fn default() -> Self {
        AnchoredRegex::new("(.*)").expect("the default regex compiles")
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for AnchoredRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        AnchoredRegex::new(&source).map_err(serde::de::Error::custom)
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub regex: AnchoredRegex,
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".to_owned()
}

fn default_replacement() -> String {
    "$1".to_owned()
}

impl RelabelConfig {
    /// Combinations Prometheus refuses too.
    pub fn check(&self) -> Result<(), String> {
        match self.action {
            Action::Replace if self.target_label.is_none() => {
                Err("action replace needs target_label".into())
            }
            Action::Keep | Action::Drop if self.source_labels.is_empty() => {
                Err(format!("action {:?} needs source_labels", self.action).to_lowercase())
            }
            Action::Labelmap | Action::Labeldrop
                if self.target_label.is_some() || !self.source_labels.is_empty() =>
            {
                Err(format!(
                    "action {:?} takes neither source_labels nor target_label",
                    self.action
                )
                .to_lowercase())
            }
            _ => Ok(()),
        }
    }

    fn source_value(&self, labels: &Labels) -> String {
        let mut value = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                value.push_str(&self.separator);
            }
            if let Some((_, v)) = labels.iter().find(|(n, _)| n == name) {
                value.push_str(v);
            }
        }
        value
    }

    /// Applies the rule; `false` means the label list is dropped.
    fn apply(&self, labels: &mut Labels) -> bool {
        let regex = &self.regex.compiled;
        match self.action {
            Action::Keep => regex.is_match(&self.source_value(labels)),
            Action::Drop => !regex.is_match(&self.source_value(labels)),
            Action::Replace => {
                let value = self.source_value(labels);
                let Some(captures) = regex.captures(&value) else {
                    return true;
                };
                let target_template = self.target_label.as_deref().unwrap_or_default();
                let mut target = String::new();
                captures.expand(target_template, &mut target);
                let mut replaced = String::new();
                captures.expand(&self.replacement, &mut replaced);
                if target.is_empty() {
                    return true;
                }
                set_label(labels, &target, replaced);
                true
            }
            Action::Labelmap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(name, value)| {
                        let captures = regex.captures(name)?;
                        let mut new_name = String::new();
                        captures.expand(&self.replacement, &mut new_name);
                        Some((new_name, value.clone()))
                    })
                    .collect();
                for (name, value) in mapped {
                    set_label(labels, &name, value);
                }
                true
            }
            Action::Labeldrop => {
                labels.retain(|(name, _)| !regex.is_match(name));
                true
            }
        }
    }
}

/// Sets (or, for an empty value, removes) one label.
fn set_label(labels: &mut Labels, name: &str, value: String) {
    if value.is_empty() {
        labels.retain(|(n, _)| n != name);
    } else if let Some(slot) = labels.iter_mut().find(|(n, _)| n == name) {
        slot.1 = value;
    } else {
        labels.push((name.to_owned(), value));
    }
}

/// Applies the rules in order; `false` means the label list is dropped.
pub fn relabel(rules: &[RelabelConfig], labels: &mut Labels) -> bool {
    rules.iter().all(|rule| rule.apply(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        let rules: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        for rule in &rules {
            rule.check().unwrap();
        }
        rules
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn sorted(mut labels: Labels) -> Labels {
        labels.sort();
        labels
    }

    #[test]
    fn replace_joins_sources_and_expands_groups() {
        let r = rules(
            r#"
- source_labels: [__address__, __meta_port]
  regex: '([^:]+)(?::\d+)?;(\d+)'
  replacement: '$1:$2'
  target_label: __address__
- source_labels: [missing]
  target_label: gone
  regex: 'x'
- source_labels: [app]
  target_label: app
  regex: 'nomatch'
  replacement: ''
"#,
        );
        let mut l = labels(&[
            ("__address__", "10.0.0.1:8080"),
            ("__meta_port", "15020"),
            ("app", "reviews"),
        ]);
        assert!(relabel(&r, &mut l));
        assert_eq!(
            sorted(l),
            labels(&[
                ("__address__", "10.0.0.1:15020"),
                ("__meta_port", "15020"),
                ("app", "reviews")
            ])
        );
        // An empty replacement removes the target label.
        let r =
            rules("- {source_labels: [app], regex: 'reviews', replacement: '', target_label: app}");
        let mut l = labels(&[("app", "reviews"), ("x", "1")]);
        assert!(relabel(&r, &mut l));
        assert_eq!(l, labels(&[("x", "1")]));
    }

    #[test]
    fn regexes_are_anchored_for_keep_and_drop() {
        let keep = rules("- {source_labels: [__name__], regex: 'envoy_.*', action: keep}");
        let mut l = labels(&[("__name__", "envoy_server_live")]);
        assert!(relabel(&keep, &mut l));
        let mut l = labels(&[("__name__", "x_envoy_server_live")]);
        assert!(!relabel(&keep, &mut l), "an unanchored match kept it");
        let drop = rules("- {source_labels: [a, b], separator: '|', regex: '1\\|2', action: drop}");
        assert!(!relabel(&drop, &mut labels(&[("a", "1"), ("b", "2")])));
        assert!(relabel(&drop, &mut labels(&[("a", "1"), ("b", "3")])));
    }

    #[test]
    fn labelmap_copies_and_labeldrop_removes() {
        let r = rules(
            r#"
- action: labelmap
  regex: '__meta_kubernetes_pod_label_(.+)'
- action: labeldrop
  regex: '__meta_.*'
"#,
        );
        let mut l = labels(&[
            ("__meta_kubernetes_pod_label_app", "reviews"),
            ("__meta_kubernetes_pod_label_version", "v1"),
            ("pod", "p"),
        ]);
        assert!(relabel(&r, &mut l));
        assert_eq!(
            sorted(l),
            labels(&[("app", "reviews"), ("pod", "p"), ("version", "v1")])
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        let bad: Result<Vec<RelabelConfig>, _> =
            serde_yaml::from_str("- {regex: '(', target_label: x}");
        assert!(bad.is_err());
        let r: Vec<RelabelConfig> = serde_yaml::from_str("- {source_labels: [a]}").unwrap();
        assert_eq!(
            r[0].check().unwrap_err(),
            "action replace needs target_label"
        );
        let r: Vec<RelabelConfig> = serde_yaml::from_str("- {action: keep}").unwrap();
        assert_eq!(r[0].check().unwrap_err(), "action keep needs source_labels");
    }
}
