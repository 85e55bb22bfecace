//! Secret redaction for printing the effective config (`check-config`, startup log).
//!
//! Owns the list of secret-bearing keys: ingest tokens, each endpoint's `basic_auth.password`,
//! `bearer_token` and credential headers, each scrape job's `bearer_token`,
//! `basic_auth.password` and `authorization.credentials`. URLs redact their own user info when shown
//! (`crate::floor::http_url`). It must never alter the config the sink runs with.

use std::collections::BTreeMap;

use super::SinkConfig;
use crate::floor::http::BasicAuth;
use crate::floor::REDACTED;

/// Header names whose values are credentials (matched case-insensitively, as substrings).
fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "passw",
        "cookie",
        "key",
        "credential",
        "session",
        "signature",
    ]
    .iter()
    .any(|s| lower.contains(s))
}

/// A copy of `config` with tokens, passwords and credential headers replaced by [`REDACTED`].
pub fn redacted(config: &SinkConfig) -> SinkConfig {
    let mut out = config.clone();
    if let Some(token) = &mut out.reload.token {
        *token = REDACTED.to_owned();
    }
    for token in &mut out.ingest.tokens {
        *token = REDACTED.to_owned();
    }
    for rw in &mut out.remote_write {
        redact_connection(&mut rw.basic_auth, &mut rw.bearer_token, &mut rw.headers);
    }
    for loki in &mut out.logs {
        redact_connection(
            &mut loki.basic_auth,
            &mut loki.bearer_token,
            &mut loki.headers,
        );
    }
    let jobs = out.scrape.iter_mut().flat_map(|s| s.jobs.iter_mut());
    for job in jobs {
        let secrets = [
            job.bearer_token.as_mut(),
            job.basic_auth.as_mut().and_then(|b| b.password.as_mut()),
            job.authorization
                .as_mut()
                .and_then(|a| a.credentials.as_mut()),
        ];
        for secret in secrets.into_iter().flatten() {
            *secret = REDACTED.to_owned();
        }
    }
    out
}

/// Redacts the credentials of one push endpoint.
fn redact_connection(
    basic_auth: &mut Option<BasicAuth>,
    bearer_token: &mut Option<String>,
    headers: &mut BTreeMap<String, String>,
) {
    if let Some(auth) = basic_auth {
        auth.password = REDACTED.to_owned();
    }
    if let Some(token) = bearer_token {
        *token = REDACTED.to_owned();
    }
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name) {
            *value = REDACTED.to_owned();
        }
    }
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
    headers: {X-Scope-OrgID: tenant, X-Api-Key: k3y, X-Functions_Key: fk3y}
  - url: https://rw-user:rwpa55@m2/api/v1/push
logs:
  - url: http://loki/loki/api/v1/push
    bearer_token: l0ki
    headers: {X-Auth-Token: h3ad, Cookie: c00kie}
  - url: http://l0ki-tok3n@loki2/loki/api/v1/push
scrape:
  jobs:
    - {name: k, kubernetes_sd: {api_server: 'https://k8s:6443'}}
    - {name: b, basic_auth: {username: u, password: scr4pe}, static_configs: [{targets: ['h:1']}]}
    - {name: a, authorization: {credentials: cr3d}, static_configs: [{targets: ['h:1']}]}
    - {name: t, bearer_token: b3arer, static_configs: [{targets: ['h:1']}]}
"#;
        let config = SinkConfig::from_yaml(text, &|_| None).unwrap();
        let printed = serde_yaml::to_string(&redacted(&config)).unwrap();
        let debug = format!("{:?}", redacted(&config));
        for secret in [
            "t0p", "s3cret", "k3y", "fk3y", "l0ki", "h3ad", "c00kie", "rw-user", "rwpa55", "tok3n",
            "scr4pe", "cr3d", "b3arer",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked in {printed}");
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(
            printed.contains("https://<redacted>@m2/api/v1/push"),
            "{printed}"
        );
        assert_eq!(
            config.remote_write[1].display_name(),
            "https://<redacted>@m2/api/v1/push"
        );
        assert!(printed.contains("https://k8s:6443"), "{printed}");
        assert!(printed.contains("tenant"));
        assert!(printed.contains("username: u"));
        assert_eq!(config.ingest.tokens, vec!["t0p".to_owned()]);
    }
}
