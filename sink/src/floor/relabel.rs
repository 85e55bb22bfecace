//! Prometheus `relabel_config` with every action Prometheus has (`replace`, `keep`, `drop`,
//! `keepequal`, `dropequal`, `hashmod`, `labelmap`, `labeldrop`, `labelkeep`, `lowercase`,
//! `uppercase`), its defaults (`separator: ";"`, `regex: "(.*)"`, `replacement: "$1"`,
//! `action: replace`), its fully anchored regular expressions (`^(?s:…)$`) and the checks its
//! config loader makes.
//!
//! Owns the rule model and its application to one label list; it must not know where the labels
//! come from (targets, scraped series, log files or series sent by remote-write).

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A label list being relabeled: `(name, value)`, names unique.
pub type Labels = Vec<(String, String)>;

/// The actions, written in lower case (Prometheus accepts any case on input).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    Labelmap,
    Labeldrop,
    Labelkeep,
    Lowercase,
    Uppercase,
}

const ACTIONS: [(&str, Action); 11] = [
    ("replace", Action::Replace),
    ("keep", Action::Keep),
    ("drop", Action::Drop),
    ("keepequal", Action::KeepEqual),
    ("dropequal", Action::DropEqual),
    ("hashmod", Action::HashMod),
    ("labelmap", Action::Labelmap),
    ("labeldrop", Action::Labeldrop),
    ("labelkeep", Action::Labelkeep),
    ("lowercase", Action::Lowercase),
    ("uppercase", Action::Uppercase),
];

impl Action {
    fn name(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("replace", |(n, _)| n)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let lower = text.to_ascii_lowercase();
        ACTIONS
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let names: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
                serde::de::Error::custom(format!(
                    "unknown relabel action {text:?} (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// A regular expression anchored at both ends with `.` matching newlines, as Prometheus
/// compiles relabel regexes (`^(?s:<regex>)$`).
#[derive(Clone)]
pub struct AnchoredRegex {
    source: String,
    compiled: Regex,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<AnchoredRegex, regex::Error> {
        Ok(AnchoredRegex {
            source: source.to_owned(),
            compiled: Regex::new(&format!("^(?s:{source})$"))?,
        })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text)
    }
}

impl Default for AnchoredRegex {
    fn default() -> Self {
        AnchoredRegex::new(DEFAULT_REGEX).expect("the default regex compiles")
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

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

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
    /// `hashmod`'s divisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_owned()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_owned()
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label name that may hold `$1`, `${1}` or `$name` references (Prometheus'
/// `relabelTargetLegacy`: `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`).
fn is_label_template(name: &str) -> bool {
    let mut rest = name;
    let mut first = true;
    while let Some(c) = rest.chars().next() {
        if c == '$' {
            let after = &rest[1..];
            let len = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if end > 0 && inner[..end].chars().all(is_word) => end + 2,
                    _ => return false,
                }
            } else {
                after.chars().take_while(|c| is_word(*c)).count()
            };
            if len == 0 {
                return false;
            }
            rest = &after[len..];
        } else if is_word(c) && (!first || !c.is_ascii_digit()) {
            rest = &rest[1..];
        } else {
            return false;
        }
        first = false;
    }
    !name.is_empty()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl RelabelConfig {
    /// The checks Prometheus' config loader makes, with its wording.
    pub fn check(&self) -> Result<(), String> {
        let action = self.action.name();
        let target = self.target_label.as_deref().unwrap_or_default();
        let default_replacement = self.replacement == DEFAULT_REPLACEMENT;
        use Action::*;
        if self.action == HashMod && self.modulus.unwrap_or(0) == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            self.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target.is_empty()
        {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let valid_target = match self.action {
            Replace => is_label_template(target),
            HashMod | Lowercase | Uppercase | KeepEqual | DropEqual => is_label_name(target),
            _ => true,
        };
        if !valid_target {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {action} action"
            ));
        }
        if matches!(self.action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && !default_replacement
        {
            return Err(format!("'replacement' can not be set for {action} action"));
        }
        if self.action == Labelmap && !is_label_template(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                self.replacement
            ));
        }
        if matches!(self.action, KeepEqual | DropEqual)
            && (self.regex.source != DEFAULT_REGEX
                || self.modulus.is_some()
                || self.separator != DEFAULT_SEPARATOR)
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(self.action, Labeldrop | Labelkeep)
            && (!self.source_labels.is_empty()
                || self.target_label.is_some()
                || self.modulus.is_some()
                || self.separator != DEFAULT_SEPARATOR
                || !default_replacement)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }

    fn source_value(&self, labels: &Labels) -> String {
        let mut value = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                value.push_str(&self.separator);
            }
            value.push_str(get(labels, name));
        }
        value
    }

    fn target(&self) -> &str {
        self.target_label.as_deref().unwrap_or_default()
    }

    /// Applies the rule; `false` means the label list is dropped.
    fn apply(&self, labels: &mut Labels) -> bool {
        let regex = &self.regex.compiled;
        match self.action {
            Action::Keep => regex.is_match(&self.source_value(labels)),
            Action::Drop => !regex.is_match(&self.source_value(labels)),
            Action::KeepEqual => get(labels, self.target()) == self.source_value(labels),
            Action::DropEqual => get(labels, self.target()) != self.source_value(labels),
            Action::Replace => {
                self.replace(labels);
                true
            }
            Action::Lowercase => {
                let value = self.source_value(labels).to_lowercase();
                set_label(labels, self.target(), value);
                true
            }
            Action::Uppercase => {
                let value = self.source_value(labels).to_uppercase();
                set_label(labels, self.target(), value);
                true
            }
            Action::HashMod => {
                let hash = Md5::digest(self.source_value(labels).as_bytes());
                let tail: [u8; 8] = hash[8..].try_into().expect("an MD5 sum has 16 bytes");
                let modulus = self.modulus.unwrap_or(1).max(1);
                let value = (u64::from_be_bytes(tail) % modulus).to_string();
                set_label(labels, self.target(), value);
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
            Action::Labelkeep => {
                labels.retain(|(name, _)| regex.is_match(name));
                true
            }
        }
    }

    /// `replace`: nothing happens without a match or when the expanded target is not a label
    /// name; an empty result removes the target label.
    fn replace(&self, labels: &mut Labels) {
        let value = self.source_value(labels);
        let Some(captures) = self.regex.compiled.captures(&value) else {
            return;
        };
        let mut target = String::new();
        captures.expand(self.target(), &mut target);
        if !is_label_name(&target) {
            return;
        }
        let mut replaced = String::new();
        captures.expand(&self.replacement, &mut replaced);
        set_label(labels, &target, replaced);
    }
}

/// A label's value, empty when absent (Prometheus does not tell the two apart).
fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
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
            "relabel configuration for replace action requires 'target_label' value"
        );
        let r: Vec<RelabelConfig> = serde_yaml::from_str("- {action: lowercase}").unwrap();
        assert_eq!(
            r[0].check().unwrap_err(),
            "relabel configuration for lowercase action requires 'target_label' value"
        );
    }
}
