//! One Prometheus `remote_write[]` entry and its translation into a remote-write endpoint:
//! URL, headers, `basic_auth`, `authorization`, `bearer_token(_file)`, TLS, `queue_config`,
//! `metadata_config`, `write_relabel_configs`, `global.external_labels`. Secret files are read
//! once, at load.
//!
//! Owns these keys and how they map onto the endpoint's own; it must not send anything.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{read_secret, Global, NotSupported, PromAuthorization, PromBasicAuth, PromTlsConfig};
use crate::export::remote_write::config::QueueConfig;
use crate::export::remote_write::RemoteWriteConfig;
use crate::floor::http::BasicAuth;
use crate::floor::relabel::RelabelConfig;
use crate::floor::{HttpUrl, HumanDuration};

/// `remote_write[]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromRemoteWrite {
    url: HttpUrl,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    basic_auth: Option<PromBasicAuth>,
    #[serde(default)]
    authorization: Option<PromAuthorization>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<String>,
    #[serde(default)]
    tls_config: PromTlsConfig,
    #[serde(default)]
    remote_timeout: Option<HumanDuration>,
    #[serde(default)]
    queue_config: Option<PromQueueConfig>,
    #[serde(default)]
    metadata_config: PromMetadataConfig,
    #[serde(default)]
    write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    send_exemplars: bool,
    #[serde(default)]
    send_native_histograms: bool,
    #[serde(default)]
    protobuf_message: Option<NotSupported>,
    #[serde(default)]
    round_robin_dns: Option<NotSupported>,
    #[serde(default)]
    sigv4: Option<NotSupported>,
    #[serde(default)]
    azuread: Option<NotSupported>,
    #[serde(default)]
    google_iam: Option<NotSupported>,
    #[serde(default)]
    oauth2: Option<NotSupported>,
    #[serde(default)]
    proxy_url: Option<NotSupported>,
    #[serde(default)]
    follow_redirects: Option<NotSupported>,
    #[serde(default)]
    enable_http2: Option<NotSupported>,
}

/// `queue_config:`; `max_shards` is the number of lanes (fixed, no resharding) and `capacity`
/// counts per shard, as in Prometheus.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromQueueConfig {
    capacity: usize,
    max_shards: usize,
    max_samples_per_send: usize,
    batch_send_deadline: HumanDuration,
    min_backoff: HumanDuration,
    max_backoff: HumanDuration,
    retry_on_http_429: bool,
    sample_age_limit: HumanDuration,
    min_shards: Option<NotSupported>,
}

impl Default for PromQueueConfig {
    fn default() -> Self {
        let ours = QueueConfig::default();
        PromQueueConfig {
            capacity: ours.capacity / ours.lanes,
            max_shards: ours.lanes,
            max_samples_per_send: ours.max_samples_per_send,
            batch_send_deadline: ours.batch_send_deadline,
            min_backoff: ours.min_backoff,
            max_backoff: ours.max_backoff,
            retry_on_http_429: ours.retry_on_429,
            sample_age_limit: ours.max_sample_age,
            min_shards: None,
        }
    }
}

/// `metadata_config:`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromMetadataConfig {
    send: bool,
    send_interval: HumanDuration,
    max_samples_per_send: Option<NotSupported>,
}

impl Default for PromMetadataConfig {
    fn default() -> Self {
        PromMetadataConfig {
            send: true,
            send_interval: HumanDuration::from_secs(60),
            max_samples_per_send: None,
        }
    }
}

impl PromRemoteWrite {
    /// The endpoint this entry stands for; `at` is its path.
    pub fn translate(&self, global: &Global, at: &str) -> Result<RemoteWriteConfig, String> {
        self.refuse_what_meshtap_does_not_send(at)?;
        let mut headers = self.headers.clone();
        let basic_auth = self.basic_auth(at)?;
        let mut bearer_token = inline_or_file(
            at,
            "bearer_token",
            self.bearer_token.as_deref(),
            self.bearer_token_file.as_deref(),
        )?;
        self.apply_authorization(at, basic_auth.is_some(), &mut bearer_token, &mut headers)?;
        let config = RemoteWriteConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            headers,
            tenant_id: None,
            basic_auth,
            bearer_token,
            tls: self.tls_config.translate(),
            external_labels: global.external_labels.clone(),
            write_relabel_configs: self.write_relabel_configs.clone(),
            send_metadata: self.metadata_config.send,
            metadata_interval: self.metadata_config.send_interval,
            remote_timeout: self
                .remote_timeout
                .unwrap_or_else(|| HumanDuration::from_secs(30)),
            queue: self.queue(),
        };
        config.check(at)?;
        Ok(config)
    }

    /// Exemplars and native histograms: meshtap has none to send.
    fn refuse_what_meshtap_does_not_send(&self, at: &str) -> Result<(), String> {
        if self.send_exemplars {
            return Err(format!(
                "{at}.send_exemplars: not supported by meshtap (it sends no exemplars)"
            ));
        }
        if self.send_native_histograms {
            return Err(format!(
                "{at}.send_native_histograms: not supported by meshtap (it sends classic histograms)"
            ));
        }
        Ok(())
    }

    /// `basic_auth:` with its password read from `password_file` when given.
    fn basic_auth(&self, at: &str) -> Result<Option<BasicAuth>, String> {
        let Some(basic) = &self.basic_auth else {
            return Ok(None);
        };
        let at = format!("{at}.basic_auth");
        let password = inline_or_file(
            &at,
            "password",
            basic.password.as_deref(),
            basic.password_file.as_deref(),
        )?;
        Ok(Some(BasicAuth {
            username: basic.username.clone(),
            password: password.unwrap_or_default(),
        }))
    }

    /// `authorization:` as the bearer token (type `Bearer`) or an `Authorization` header
    /// (any other type); refused beside `basic_auth` or a bearer token.
    fn apply_authorization(
        &self,
        at: &str,
        has_basic_auth: bool,
        bearer_token: &mut Option<String>,
        headers: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let Some(auth) = &self.authorization else {
            return Ok(());
        };
        let credentials = inline_or_file(
            &format!("{at}.authorization"),
            "credentials",
            auth.credentials.as_deref(),
            auth.credentials_file.as_deref(),
        )?
        .unwrap_or_default();
        if has_basic_auth || bearer_token.is_some() {
            return Err(format!(
                "{at}.authorization: at most one of basic_auth, authorization and bearer_token may be set"
            ));
        }
        if auth.kind.eq_ignore_ascii_case("bearer") {
            *bearer_token = Some(credentials);
        } else {
            headers.insert(
                "Authorization".into(),
                format!("{} {credentials}", auth.kind),
            );
        }
        Ok(())
    }

    /// `queue_config:` in the endpoint's terms (`capacity` is per shard in Prometheus, for
    /// all lanes in meshtap).
    fn queue(&self) -> QueueConfig {
        self.queue_config
            .as_ref()
            .map_or_else(QueueConfig::default, |q| QueueConfig {
                max_samples_per_send: q.max_samples_per_send,
                batch_send_deadline: q.batch_send_deadline,
                lanes: q.max_shards,
                min_backoff: q.min_backoff,
                max_backoff: q.max_backoff,
                retry_on_429: q.retry_on_http_429,
                max_sample_age: q.sample_age_limit,
                capacity: q.capacity.saturating_mul(q.max_shards),
                ..QueueConfig::default()
            })
    }
}

/// `<key>` or `<key>_file` (read now) under `at`, not both; `None` when neither is set.
fn inline_or_file(
    at: &str,
    key: &str,
    inline: Option<&str>,
    file: Option<&str>,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "{at}: at most one of {key} and {key}_file may be set"
        )),
        (_, Some(file)) => read_secret(&format!("{at}.{key}_file"), file).map(Some),
        (inline, None) => Ok(inline.map(str::to_owned)),
    }
}
