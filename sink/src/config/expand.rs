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

/// Expands every string value in `value`, using `lookup` for variables. A string that was
/// changed by expansion is re-read as a YAML scalar, so `${PORT}` can fill a number field.
pub fn expand_tree(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ExpandError> {
    match value {
        Value::String(text) => {
            if let Some(expanded) = expand_str(text, path, lookup)? {
                *value = match serde_yaml::from_str::<Value>(&expanded) {
                    Ok(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
                    _ => Value::String(expanded),
                };
            }
            Ok(())
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), lookup)?;
            }
            Ok(())
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.as_str().map(str::to_owned).unwrap_or_default();
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_tree(item, &child, lookup)?;
            }
            Ok(())
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, lookup),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
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
        let inner = &rest[start + 2..start + 2 + len];
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
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ExpandError::Unset {
                    path: path.to_owned(),
                    var: var.to_owned(),
                })
            }
        }
        rest = &rest[start + 2 + len + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
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
    }

    #[test]
    fn expanded_numbers_become_numbers_and_paths_are_reported() {
        let mut v: Value = serde_yaml::from_str("a: {b: ['${PORT}', '${NOPE}']}").unwrap();
        let err = expand_tree(&mut v, "", &env).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Unset {
                path: "a.b[1]".into(),
                var: "NOPE".into()
            }
        );
        let mut v: Value = serde_yaml::from_str("port: '${PORT}'").unwrap();
        expand_tree(&mut v, "", &env).unwrap();
        assert_eq!(v["port"], Value::Number(9009.into()));
    }
}
