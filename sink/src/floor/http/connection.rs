//! The connection settings every push endpoint shares — remote-write and Loki alike: URL,
//! custom headers, the `tenant_id` shorthand, basic or bearer auth, TLS files.
//!
//! Owns the checks serde cannot express for those keys and the header set they produce. It
//! borrows from each endpoint's own config struct and must not hold protocol-specific rules
//! (those stay in `export::remote_write::config` and `export::loki::config`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::TlsConfig;
use crate::floor::HttpUrl;

/// `basic_auth:` of a push endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// One endpoint's connection settings, borrowed from its config.
pub struct Connection<'a> {
    pub url: &'a HttpUrl,
    pub headers: &'a BTreeMap<String, String>,
    pub tenant_id: Option<&'a str>,
    pub basic_auth: Option<&'a BasicAuth>,
    pub bearer_token: Option<&'a str>,
    pub tls: &'a TlsConfig,
}

impl Connection<'_> {
    /// Headers to send besides the protocol's fixed ones: the configured headers, then the
    /// tenant shorthand as `X-Scope-OrgID`.
    pub fn extra_headers(&self) -> BTreeMap<String, String> {
        let mut headers = self.headers.clone();
        if let Some(tenant) = self.tenant_id {
            headers.insert("X-Scope-OrgID".into(), tenant.to_owned());
        }
        headers
    }

    /// Checks the shared keys; `at` is the entry's path (like `logs[0]`), `fixed` the headers
    /// the `protocol` sets itself (lower case), which configured headers may not override.
    pub fn check(&self, at: &str, fixed: &[&str], protocol: &str) -> Result<(), String> {
        for name in self.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if fixed.contains(&lower.as_str()) {
                return Err(format!(
                    "{at}.headers.{name}: this header is fixed by the {protocol} protocol"
                ));
            }
            if lower == "authorization"
                && (self.basic_auth.is_some()
                    || self.bearer_token.is_some()
                    || self.url.has_user_info())
            {
                return Err(format!(
                    "{at}.headers.{name}: conflicts with basic_auth/bearer_token/the URL's user info"
                ));
            }
            if self.tenant_id.is_some() && lower == "x-scope-orgid" {
                return Err(format!("{at}.tenant_id: conflicts with headers.{name}"));
            }
        }
        if self.url.has_user_info() && (self.basic_auth.is_some() || self.bearer_token.is_some()) {
            return Err(format!(
                "{at}.url: has user info and basic_auth/bearer_token is set too (use one)"
            ));
        }
        if self.basic_auth.is_some() && self.bearer_token.is_some() {
            return Err(format!(
                "{at}.bearer_token: set either basic_auth or bearer_token, not both"
            ));
        }
        self.tls.check(&format!("{at}.tls"))
    }
}
