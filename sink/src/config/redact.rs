//! Secret redaction for printing the effective config (`check-config`, startup log).
//!
//! Owns the list of secret-bearing keys; it must never alter the config the sink runs with.

use super::SinkConfig;

/// What a secret is printed as.
pub const REDACTED: &str = "<redacted>";

/// Header names whose values are credentials.
fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "authorization",
        "token",
        "secret",
        "password",
        "cookie",
        "api-key",
        "apikey",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

/// A copy of `config` with tokens, passwords and credential headers replaced by [`REDACTED`].
pub fn redacted(config: &SinkConfig) -> SinkConfig {
    let mut out = config.clone();
    for token in &mut out.ingest.tokens {
        *token = REDACTED.to_owned();
    }
    for rw in &mut out.remote_write {
        if let Some(auth) = &mut rw.basic_auth {
            auth.password = REDACTED.to_owned();
        }
        if let Some(token) = &mut rw.bearer_token {
            *token = REDACTED.to_owned();
        }
        for (name, value) in rw.headers.iter_mut() {
            if is_secret_header(name) {
                *value = REDACTED.to_owned();
            }
        }
    }
    for loki in &mut out.logs {
        if let Some(auth) = &mut loki.basic_auth {
            auth.password = REDACTED.to_owned();
        }
        if let Some(token) = &mut loki.bearer_token {
            *token = REDACTED.to_owned();
        }
        for (name, value) in loki.headers.iter_mut() {
            if is_secret_header(name) {
                *value = REDACTED.to_owned();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secrets_and_keeps_the_rest() {
        let text = r#"
ingest: {tokens: [t0p]}
remote_write:
  - url: http://m/api/v1/push
    basic_auth: {username: u, password: s3cret}
    headers: {X-Scope-OrgID: tenant, X-Api-Key: k3y}
logs:
  - url: http://loki/loki/api/v1/push
    bearer_token: l0ki
    headers: {X-Auth-Token: h3ad}
"#;
        let config = SinkConfig::from_yaml(text, &|_| None).unwrap();
        let printed = serde_yaml::to_string(&redacted(&config)).unwrap();
        for secret in ["t0p", "s3cret", "k3y", "l0ki", "h3ad"] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
        }
        assert!(printed.contains("tenant"));
        assert!(printed.contains("username: u"));
        assert_eq!(config.ingest.tokens, vec!["t0p".to_owned()]);
    }
}
