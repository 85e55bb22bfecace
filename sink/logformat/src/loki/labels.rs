//! A Loki stream's label set: validated against Loki's default limits (15 names, name ≤ 1024 and
//! value ≤ 2048 bytes, Prometheus name syntax, no duplicates), sorted by name and rendered the way
//! Loki reads it, `{a="b", c="d"}` with Go-style escapes in values. Owns label rules only;
//! which labels a stream gets is the caller's decision.

use std::fmt::Write as _;

use thiserror::Error;

/// Loki's default `max_label_names_per_series`.
pub const MAX_LABEL_NAMES_PER_SERIES: usize = 15;
/// Loki's default `max_label_name_length`.
pub const MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Loki's default `max_label_value_length`.
pub const MAX_LABEL_VALUE_LENGTH: usize = 2048;

/// Why a label set would be rejected by Loki.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    #[error("stream has {count} labels; Loki accepts at most {MAX_LABEL_NAMES_PER_SERIES}")]
    TooMany { count: usize },
    #[error("stream has no labels; Loki requires at least one")]
    Empty,
    #[error("label name {0:?} is not [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidName(String),
    #[error("label name {0:?} appears twice")]
    DuplicateName(String),
    #[error("label name {name:?}… is longer than {MAX_LABEL_NAME_LENGTH} bytes")]
    NameTooLong { name: String },
    #[error("value of label {name:?} is longer than {MAX_LABEL_VALUE_LENGTH} bytes")]
    ValueTooLong { name: String },
}

/// A validated, name-sorted label set and its rendered form (the stream's identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamLabels {
    pairs: Vec<(String, String)>,
    rendered: String,
}

impl StreamLabels {
    /// Validates and sorts `(name, value)` pairs. Pairs with an empty value are left out (Loki,
    /// like Prometheus, treats an empty value as an absent label).
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self, LabelError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        if pairs.is_empty() {
            return Err(LabelError::Empty);
        }
        if pairs.len() > MAX_LABEL_NAMES_PER_SERIES {
            return Err(LabelError::TooMany { count: pairs.len() });
        }
        for (name, value) in &pairs {
            if name.len() > MAX_LABEL_NAME_LENGTH {
                let prefix: String = name.chars().take(64).collect();
                return Err(LabelError::NameTooLong { name: prefix });
            }
            if !is_valid_label_name(name) {
                return Err(LabelError::InvalidName(name.clone()));
            }
            if value.len() > MAX_LABEL_VALUE_LENGTH {
                return Err(LabelError::ValueTooLong { name: name.clone() });
            }
        }
        pairs.sort_by(|left, right| left.0.cmp(&right.0));
        if let Some(duplicate) = pairs.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(LabelError::DuplicateName(duplicate[0].0.clone()));
        }
        let rendered = render(&pairs);
        Ok(StreamLabels { pairs, rendered })
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `{a="b", c="d"}`, as `StreamAdapter.labels` carries it.
    pub fn as_str(&self) -> &str {
        &self.rendered
    }
}

fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

fn render(pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(n, v)| n.len() + v.len() + 6).sum());
    out.push('{');
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        push_escaped(&mut out, value);
        out.push('"');
    }
    out.push('}');
    out
}

/// Escapes a value as Go's `strconv.Quote` does for the characters a label value can hold, which
/// is what Loki's label parser reads back.
fn push_escaped(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            control if (control as u32) < 0x20 || control == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", control as u32);
            }
            control if ('\u{80}'..='\u{9f}').contains(&control) => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_renders_prometheus_style() {
        let labels = StreamLabels::new([
            ("pod", "reviews-v1-545db77b95-2ps7q"),
            ("job", "integrations/istio"),
            ("namespace", "bookinfo"),
            ("container", "istio-proxy"),
        ])
        .unwrap();
        assert_eq!(
            labels.as_str(),
            r#"{container="istio-proxy", job="integrations/istio", namespace="bookinfo", pod="reviews-v1-545db77b95-2ps7q"}"#
        );
        assert_eq!(labels.pairs()[0].0, "container");
    }

    #[test]
    fn escapes_values() {
        let labels = StreamLabels::new([("a", "q\"b\\n\nt\tc\u{1}d\u{7f}é\u{85}")]).unwrap();
        assert_eq!(labels.as_str(), r#"{a="q\"b\\n\nt\tc\x01d\x7fé\u0085"}"#);
    }

    #[test]
    fn drops_empty_values() {
        let labels = StreamLabels::new([("a", "1"), ("b", "")]).unwrap();
        assert_eq!(labels.as_str(), r#"{a="1"}"#);
        assert_eq!(StreamLabels::new([("b", "")]), Err(LabelError::Empty));
    }

    #[test]
    fn enforces_loki_limits() {
        let fifteen: Vec<(String, String)> =
            (0..15).map(|i| (format!("l{i}"), "v".to_owned())).collect();
        assert!(StreamLabels::new(fifteen.clone()).is_ok());
        let mut sixteen = fifteen;
        sixteen.push(("l15".into(), "v".into()));
        assert_eq!(
            StreamLabels::new(sixteen),
            Err(LabelError::TooMany { count: 16 })
        );
        assert_eq!(
            StreamLabels::new([("0abc", "v")]),
            Err(LabelError::InvalidName("0abc".into()))
        );
        assert_eq!(
            StreamLabels::new([("a-b", "v")]),
            Err(LabelError::InvalidName("a-b".into()))
        );
        assert_eq!(
            StreamLabels::new([("a", "1"), ("a", "2")]),
            Err(LabelError::DuplicateName("a".into()))
        );
        assert!(matches!(
            StreamLabels::new([("a".repeat(1025), "v".to_owned())]),
            Err(LabelError::NameTooLong { .. })
        ));
        assert_eq!(
            StreamLabels::new([("a".to_owned(), "v".repeat(2049))]),
            Err(LabelError::ValueTooLong { name: "a".into() })
        );
        assert!(StreamLabels::new([("a".to_owned(), "v".repeat(2048))]).is_ok());
    }
}
