//! The filter's `pluginConfig`: JSON parsing, defaults and validation.
//!
//! Owns the mapping from the WasmPlugin's `pluginConfig` to a checked [`FilterConfig`]. It must
//! not touch the host: the ingest token's environment variable is read through a caller-supplied
//! lookup so the parsing stays testable. Unknown keys and bad values are errors.

use std::time::Duration;

use std::collections::BTreeMap;

use meshtap_report::schema::Reporter;
use serde::Deserialize;

use crate::record::dimensions::Dimensions;
use crate::store::buckets::HistogramBounds;
use customise::{histogram_bounds, label_caps, overrides, RawOverride};

mod customise;

/// Default upstream cluster of the sink in an Istio mesh.
pub(crate) const DEFAULT_SINK_CLUSTER: &str =
    "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";
/// Default `:authority` of report requests.
pub(crate) const DEFAULT_SINK_AUTHORITY: &str = "meshtap-sink.meshtap.svc.cluster.local:9091";
/// Default label sets held per worker VM before observations go to the overflow series.
pub(crate) const DEFAULT_MAX_SERIES: usize = 10_000;
/// A label set unchanged this long is evicted (`series_idle_timeout`).
pub(crate) const DEFAULT_SERIES_IDLE_TIMEOUT_MS: u64 = 600_000;
/// Default access-log records per proxy per report interval.
pub(crate) const DEFAULT_ACCESS_LOG_MAX_PER_INTERVAL: u32 = 1_000;

/// Why a `pluginConfig` was refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("pluginConfig is not valid: {0}")]
    Json(String),
    #[error("pluginConfig.{key}: {value:?} is not a duration like \"500ms\", \"10s\" or \"1m\"")]
    Duration { key: &'static str, value: String },
    #[error("pluginConfig.{key} must be {requirement}")]
    Value {
        key: &'static str,
        requirement: &'static str,
    },
    #[error("pluginConfig: set only one of ingest_token and ingest_token_env")]
    TwoTokens,
    #[error("pluginConfig.ingest_token_env: environment variable {0:?} is not set in the VM")]
    TokenEnvMissing(String),
    #[error("pluginConfig.{path}: {problem}")]
    Customisation { path: String, problem: String },
}

/// Which metric families are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnabledMetrics {
    pub requests_total: bool,
    pub request_duration: bool,
    pub request_bytes: bool,
    pub response_bytes: bool,
    pub request_messages: bool,
    pub response_messages: bool,
    pub tcp_connections_opened: bool,
    pub tcp_connections_closed: bool,
    pub tcp_sent_bytes: bool,
    pub tcp_received_bytes: bool,
}

/// Which filter chain the plugin instance sits on: the WasmPlugin's `type`, repeated in its
/// `pluginConfig.type` because a Wasm module cannot see it. An `HTTP` instance records request
/// and gRPC message metrics; a `NETWORK` instance records the TCP metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum PluginType {
    #[default]
    Http,
    Network,
}

impl PluginType {
    /// The type a `pluginConfig` asks for, read leniently so that a configuration refused for
    /// another reason still gets the right kind of pass-through context (Envoy would otherwise
    /// call connection callbacks on an HTTP context, which traps).
    pub(crate) fn of_config(json: &[u8]) -> PluginType {
        let value: Option<serde_json::Value> = serde_json::from_slice(json).ok();
        match value.as_ref().and_then(|v| v.get("type")?.as_str()) {
            Some("NETWORK") => PluginType::Network,
            _ => PluginType::Http,
        }
    }
}

/// A checked filter configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FilterConfig {
    pub plugin_type: PluginType,
    pub sink_cluster: String,
    pub sink_authority: String,
    pub sink_path: String,
    pub report_interval: Duration,
    pub report_timeout: Duration,
    /// Evict label sets unchanged this long proxy-wide; `None` keeps them forever.
    pub series_idle_timeout: Option<Duration>,
    /// Bearer token for the sink; `None` sends no `authorization` header.
    pub ingest_token: Option<String>,
    /// Reporter override; `None` derives it from the listener direction.
    pub reporter: Option<Reporter>,
    pub disable_host_header_fallback: bool,
    pub max_series: usize,
    pub metrics: EnabledMetrics,
    /// Labels to remove per metric family name (`overrides[].tags_to_remove`).
    pub tags_to_remove: Vec<(String, Vec<String>)>,
    /// Caps on distinct values per label, as (position in the stored request label set: the
    /// 25 labels, then the extra dimensions; cap) (`label_limits`).
    pub label_caps: Vec<(usize, usize)>,
    /// Extra dimensions of the request families (`overrides[].tags`).
    pub dimensions: Dimensions,
    /// Bucket bounds of the request histograms (`histogram_buckets`).
    pub histogram_bounds: HistogramBounds,
    /// Filter-shipped access logs; `None` when disabled.
    pub access_log: Option<AccessLogConfig>,
}

/// The `access_log` section when `enabled: true`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AccessLogConfig {
    /// Fraction of the eligible requests kept, 0..=1.
    pub sample_rate: f64,
    /// Keep only failed requests (see [`crate::record::access_log::RequestOutcome::is_error`]).
    pub only_errors: bool,
    /// Records per proxy per report interval (also the bound of each worker VM's buffer).
    pub max_per_interval: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type")]
    plugin_type: Option<String>,
    sink_cluster: Option<String>,
    sink_authority: Option<String>,
    sink_path: Option<String>,
    report_interval: Option<String>,
    report_timeout: Option<String>,
    series_idle_timeout: Option<String>,
    ingest_token: Option<String>,
    ingest_token_env: Option<String>,
    reporter: Option<String>,
    disable_host_header_fallback: Option<bool>,
    max_series: Option<u64>,
    metrics: Option<RawMetrics>,
    overrides: Option<Vec<RawOverride>>,
    label_limits: Option<BTreeMap<String, u64>>,
    histogram_buckets: Option<BTreeMap<String, Vec<f64>>>,
    access_log: Option<RawAccessLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    requests_total: Option<bool>,
    request_duration: Option<bool>,
    request_bytes: Option<bool>,
    response_bytes: Option<bool>,
    request_messages: Option<bool>,
    response_messages: Option<bool>,
    tcp_connections_opened: Option<bool>,
    tcp_connections_closed: Option<bool>,
    tcp_sent_bytes: Option<bool>,
    tcp_received_bytes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    enabled: Option<bool>,
    sample_rate: Option<f64>,
    only_errors: Option<bool>,
    max_per_interval: Option<u64>,
}

impl FilterConfig {
    /// Parses a `pluginConfig` JSON document. An empty document means all defaults.
    /// `env` looks up a VM environment variable (for `ingest_token_env`).
    pub(crate) fn parse(
        json: &[u8],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = if json.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            serde_json::from_slice(json).map_err(|e| ConfigError::Json(e.to_string()))?
        };
        let (report_interval, report_timeout) =
            report_timing(raw.report_interval, raw.report_timeout)?;
        let series_idle_timeout = idle_timeout(raw.series_idle_timeout, report_interval)?;
        let sink_cluster = non_empty("sink_cluster", raw.sink_cluster, DEFAULT_SINK_CLUSTER)?;
        let sink_authority =
            non_empty("sink_authority", raw.sink_authority, DEFAULT_SINK_AUTHORITY)?;
        let sink_path = sink_path(raw.sink_path)?;
        let ingest_token = ingest_token(raw.ingest_token, raw.ingest_token_env, env)?;
        let reporter = reporter(raw.reporter.as_deref())?;
        let max_series = max_series(raw.max_series)?;
        let mut metrics = raw
            .metrics
            .map_or_else(EnabledMetrics::all, RawMetrics::enabled);
        let plugin_type = plugin_type(raw.plugin_type.as_deref())?;
        let access_log = match raw.access_log {
            Some(section) => access_log_config(section)?,
            None => None,
        };
        if plugin_type == PluginType::Network && access_log.is_some() {
            return Err(ConfigError::Value {
                key: "access_log.enabled",
                requirement: "false with type NETWORK (access logs come from the HTTP plugin)",
            });
        }
        let (tags_to_remove, dimensions) =
            overrides(raw.overrides.unwrap_or_default(), &mut metrics)?;
        let label_caps = label_caps(raw.label_limits.unwrap_or_default(), &dimensions)?;
        let histogram_bounds = histogram_bounds(raw.histogram_buckets.unwrap_or_default())?;
        Ok(FilterConfig {
            plugin_type,
            tags_to_remove,
            label_caps,
            dimensions,
            histogram_bounds,
            sink_cluster,
            sink_authority,
            sink_path,
            report_interval,
            series_idle_timeout,
            report_timeout,
            ingest_token,
            reporter,
            disable_host_header_fallback: raw.disable_host_header_fallback.unwrap_or(false),
            max_series,
            metrics,
            access_log,
        })
    }
}

/// `report_interval` (at least 1s) and `report_timeout` (above 0, not longer than it).
fn report_timing(
    interval: Option<String>,
    timeout: Option<String>,
) -> Result<(Duration, Duration), ConfigError> {
    let report_interval = duration_or("report_interval", interval, 10_000)?;
    let report_timeout = duration_or("report_timeout", timeout, 5_000)?;
    if report_interval < Duration::from_secs(1) {
        return Err(ConfigError::Value {
            key: "report_interval",
            requirement: "at least 1s",
        });
    }
    if report_timeout.is_zero() || report_timeout > report_interval {
        return Err(ConfigError::Value {
            key: "report_timeout",
            requirement: "above 0 and not longer than report_interval",
        });
    }
    Ok((report_interval, report_timeout))
}

/// `sink_path`: non-empty and absolute.
fn sink_path(raw: Option<String>) -> Result<String, ConfigError> {
    let sink_path = non_empty("sink_path", raw, meshtap_report::REPORT_PATH)?;
    if !sink_path.starts_with('/') {
        return Err(ConfigError::Value {
            key: "sink_path",
            requirement: "an absolute path starting with '/'",
        });
    }
    Ok(sink_path)
}

/// The ingest token: `ingest_token` itself, or the VM environment variable `ingest_token_env`
/// names (never both; unset or empty is an error).
fn ingest_token(
    token: Option<String>,
    token_env: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (token, token_env) {
        (Some(_), Some(_)) => Err(ConfigError::TwoTokens),
        (Some(token), None) if token.is_empty() => Err(ConfigError::Value {
            key: "ingest_token",
            requirement: "non-empty",
        }),
        (Some(token), None) => Ok(Some(token)),
        (None, Some(var)) => match env(&var) {
            Some(token) if !token.is_empty() => Ok(Some(token)),
            _ => Err(ConfigError::TokenEnvMissing(var)),
        },
        (None, None) => Ok(None),
    }
}

/// `reporter`: `None` means from the listener direction.
fn reporter(raw: Option<&str>) -> Result<Option<Reporter>, ConfigError> {
    match raw {
        None => Ok(None),
        Some("source") => Ok(Some(Reporter::Source)),
        Some("destination") => Ok(Some(Reporter::Destination)),
        Some("waypoint") => Ok(Some(Reporter::Waypoint)),
        Some(_) => Err(ConfigError::Value {
            key: "reporter",
            requirement: "one of \"source\", \"destination\", \"waypoint\"",
        }),
    }
}

/// `max_series`: 1..=1000000.
fn max_series(raw: Option<u64>) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(DEFAULT_MAX_SERIES),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n as usize),
        Some(_) => Err(ConfigError::Value {
            key: "max_series",
            requirement: "between 1 and 1000000",
        }),
    }
}

/// `type`: `HTTP` (the default) or `NETWORK`.
fn plugin_type(raw: Option<&str>) -> Result<PluginType, ConfigError> {
    match raw {
        None | Some("HTTP") => Ok(PluginType::Http),
        Some("NETWORK") => Ok(PluginType::Network),
        Some(_) => Err(ConfigError::Value {
            key: "type",
            requirement: "\"HTTP\" or \"NETWORK\" (the WasmPlugin's type)",
        }),
    }
}

impl RawMetrics {
    /// The families to record: every one not set to `false`.
    fn enabled(self) -> EnabledMetrics {
        EnabledMetrics {
            requests_total: self.requests_total.unwrap_or(true),
            request_duration: self.request_duration.unwrap_or(true),
            request_bytes: self.request_bytes.unwrap_or(true),
            response_bytes: self.response_bytes.unwrap_or(true),
            request_messages: self.request_messages.unwrap_or(true),
            response_messages: self.response_messages.unwrap_or(true),
            tcp_connections_opened: self.tcp_connections_opened.unwrap_or(true),
            tcp_connections_closed: self.tcp_connections_closed.unwrap_or(true),
            tcp_sent_bytes: self.tcp_sent_bytes.unwrap_or(true),
            tcp_received_bytes: self.tcp_received_bytes.unwrap_or(true),
        }
    }
}

impl EnabledMetrics {
    pub fn all() -> Self {
        EnabledMetrics {
            requests_total: true,
            request_duration: true,
            request_bytes: true,
            response_bytes: true,
            request_messages: true,
            response_messages: true,
            tcp_connections_opened: true,
            tcp_connections_closed: true,
            tcp_sent_bytes: true,
            tcp_received_bytes: true,
        }
    }
}

/// The checked `access_log` section; `None` unless `enabled: true`. Its other keys are checked
/// either way, so a typo is refused before the section is switched on.
fn access_log_config(raw: RawAccessLog) -> Result<Option<AccessLogConfig>, ConfigError> {
    let sample_rate = raw.sample_rate.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_rate) {
        return Err(ConfigError::Value {
            key: "access_log.sample_rate",
            requirement: "between 0 and 1",
        });
    }
    let max_per_interval = match raw.max_per_interval {
        None => DEFAULT_ACCESS_LOG_MAX_PER_INTERVAL,
        Some(n) if (1..=100_000).contains(&n) => n as u32,
        Some(_) => {
            return Err(ConfigError::Value {
                key: "access_log.max_per_interval",
                requirement: "between 1 and 100000",
            })
        }
    };
    Ok(raw.enabled.unwrap_or(false).then_some(AccessLogConfig {
        sample_rate,
        only_errors: raw.only_errors.unwrap_or(false),
        max_per_interval,
    }))
}

fn non_empty(key: &'static str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    match v {
        None => Ok(default.to_string()),
        Some(s) if s.is_empty() => Err(ConfigError::Value {
            key,
            requirement: "non-empty",
        }),
        Some(s) => Ok(s),
    }
}

/// `series_idle_timeout`: default 10 minutes, `0` or `off` disables eviction, otherwise at
/// least two report intervals (a set must be seen unchanged by more than one report).
fn idle_timeout(
    v: Option<String>,
    report_interval: Duration,
) -> Result<Option<Duration>, ConfigError> {
    if matches!(v.as_deref(), Some("0" | "off")) {
        return Ok(None);
    }
    let timeout = duration_or("series_idle_timeout", v, DEFAULT_SERIES_IDLE_TIMEOUT_MS)?;
    if timeout.is_zero() {
        return Ok(None);
    }
    if timeout < 2 * report_interval {
        return Err(ConfigError::Value {
            key: "series_idle_timeout",
            requirement: "0/off, or at least twice report_interval",
        });
    }
    Ok(Some(timeout))
}

fn duration_or(
    key: &'static str,
    v: Option<String>,
    default_ms: u64,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(Duration::from_millis(default_ms)),
        Some(s) => parse_duration(&s).ok_or(ConfigError::Duration { key, value: s }),
    }
}

/// Parses Istio-style durations: an unsigned integer or decimal followed by `ms`, `s`, `m` or `h`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = s.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let ms_per_unit = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    let ms = value * ms_per_unit;
    if !ms.is_finite() || ms > u32::MAX as f64 || ms.fract() != 0.0 {
        return None;
    }
    Some(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests;
