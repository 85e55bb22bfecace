//! `${VAR}` and `${VAR:-default}` expansion inside config *values* (never keys).
//!
//! Owns the substitution syntax only: it runs on the parsed YAML tree before the typed config is
//! deserialized, so a value produced by expansion is checked like any literal value.

use serde_yaml::Value;

/// Why a value could not be expanded.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ExpandError {
    #[error(
        "{path}: environment variable {var} is not set (use ${{{var}:-default}} for a default)"
    )]
    Unset { path: String, var: String },
    #[error("{path}: unterminated ${{...}} in {text:?}")]
    Unterminated { path: String, text: String },
    #[error("{path}: invalid variable name {var:?}")]
    BadName { path: String, var: String },
}

/// One step from the document root to a value.
#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Key(Value),
    Index(usize),
}

/// A string value that was produced by expansion.
#[derive(Clone, Debug, PartialEq)]
pub struct Expanded {
    /// Its path, written as config errors write it (`remote_write[0].queue.lanes`).
    pub path: String,
    segments: Vec<Segment>,
}

/// Expands every string value in `tree` using `lookup` for variables, and lists the values that
/// changed. Expanded values stay strings; [`retype`] turns one into a number or boolean when
/// the field it fills needs that.
pub fn expand_tree(
    tree: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Expanded>, ExpandError> {
    let mut expanded = Vec::new();
    expand_node(tree, String::new(), &mut Vec::new(), lookup, &mut expanded)?;
    Ok(expanded)
}

fn expand_node(
    value: &mut Value,
    path: String,
    segments: &mut Vec<Segment>,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<Expanded>,
) -> Result<(), ExpandError> {
    match value {
        Value::String(text) => {
            if let Some(new_text) = expand_str(text, &path, lookup)? {
                *text = new_text;
                out.push(Expanded {
                    path,
                    segments: segments.clone(),
                });
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                segments.push(Segment::Index(i));
                expand_node(item, format!("{path}[{i}]"), segments, lookup, out)?;
                segments.pop();
            }
            Ok(())
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                // A key that is not a string (`1:`, `true:`) is named as YAML writes it.
                let name = key.as_str().map_or_else(
                    || {
                        serde_yaml::to_string(key)
                            .unwrap_or_default()
                            .trim_end()
                            .to_owned()
                    },
                    str::to_owned,
                );
                let child = if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                };
                segments.push(Segment::Key(key.clone()));
                expand_node(item, child, segments, lookup, out)?;
                segments.pop();
            }
            Ok(())
        }
        Value::Tagged(tagged) => expand_node(&mut tagged.value, path, segments, lookup, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Re-reads an expanded string as a YAML scalar (`"500"` → 500, `"true"` → true). Returns
/// whether the value changed type.
pub fn retype(tree: &mut Value, expanded: &Expanded) -> bool {
    let mut node = tree;
    for segment in &expanded.segments {
        let next = match (segment, node) {
            (Segment::Key(key), Value::Mapping(map)) => map.get_mut(key),
            (Segment::Index(i), Value::Sequence(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    let Value::String(text) = node else {
        return false;
    };
    match serde_yaml::from_str::<Value>(text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => {
            *node = v;
            true
        }
        _ => false,
    }
}

/// Expands one string; `None` when it holds no `${`. `$${` stands for a literal `${`.
fn expand_str(
    text: &str,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ExpandError> {
    if !text.contains("${") {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find('}') else {
            return Err(ExpandError::Unterminated {
                path: path.to_owned(),
                text: text.to_owned(),
            });
        };
        let reference = &rest[start..start + 2 + len + 1];
        let inner = &rest[start + 2..start + 2 + len];
        // `${1}` is a regular-expression group in a relabel replacement, never a variable.
        if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(reference);
        } else {
            out.push_str(&variable_value(inner, path, lookup)?);
        }
        rest = &rest[start + 2 + len + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// What `${inner}` stands for: the variable `NAME`, or with `NAME:-default` the default when
/// the variable is unset or empty.
fn variable_value(
    inner: &str,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let (var, default) = match inner.split_once(":-") {
        Some((var, default)) => (var, Some(default)),
        None => (inner, None),
    };
    let valid = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ExpandError::BadName {
            path: path.to_owned(),
            var: var.to_owned(),
        });
    }
    match (lookup(var).filter(|v| !v.is_empty()), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(ExpandError::Unset {
            path: path.to_owned(),
            var: var.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("mimir".into()),
            "PORT" => Some("9009".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_vars_defaults_and_escapes() {
        let e = |s: &str| expand_str(s, "k", &env);
        assert_eq!(e("plain").unwrap(), None);
        assert_eq!(
            e("http://${HOST}:${PORT}/").unwrap().unwrap(),
            "http://mimir:9009/"
        );
        assert_eq!(e("${NOPE:-x}").unwrap().unwrap(), "x");
        assert_eq!(e("${EMPTY:-d}").unwrap().unwrap(), "d");
        assert_eq!(e("$${HOST}").unwrap().unwrap(), "${HOST}");
        assert!(matches!(e("${NOPE}"), Err(ExpandError::Unset { .. })));
        assert!(matches!(e("${HOST"), Err(ExpandError::Unterminated { .. })));
        assert!(matches!(e("${1X}"), Err(ExpandError::BadName { .. })));
        assert_eq!(
            e("${1}:${HOST}").unwrap().unwrap(),
            "${1}:mimir",
            "a regex group stays"
        );
    }

    #[test]
    fn expanded_values_are_listed_by_path_and_can_be_retyped() {
        let mut v: Value = serde_yaml::from_str("a: {b: ['${PORT}', '${NOPE}']}").unwrap();
        let err = expand_tree(&mut v, &env).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Unset {
                path: "a.b[1]".into(),
                var: "NOPE".into()
            }
        );
        let mut v: Value = serde_yaml::from_str("x: {port: '${PORT}', host: '${HOST}'}").unwrap();
        let expanded = expand_tree(&mut v, &env).unwrap();
        let paths: Vec<&str> = expanded.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["x.port", "x.host"]);
        assert_eq!(v["x"]["port"], Value::String("9009".into()));
        assert!(retype(&mut v, &expanded[0]));
        assert_eq!(v["x"]["port"], Value::Number(9009.into()));
        assert!(!retype(&mut v, &expanded[1]), "mimir is not a number");
    }
}
