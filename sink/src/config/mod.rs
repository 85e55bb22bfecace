//! The sink's YAML config: the top-level document assembled from the sections, loading with
//! `${VAR}` expansion, the checks across sections, and the redacted printout.
//!
//! Owns the document shape and error reporting (every error names the key's path, such as
//! `remote_write[0].queue.max_backoff`). Each section's keys live beside the code that uses
//! them (`ingest::config`, `export::remote_write::config`, `export::loki::config`,
//! `scrape::config`, `logs::config`, `serve::config`, `spool`, `view::config`), and the units
//! they share (durations, sizes, URLs) in `crate::floor`; no section imports this module, and
//! this module must not interpret a section beyond calling its checks. [`prometheus`] reads
//! Prometheus' own `scrape_configs` and `remote_write` (inline under `prometheus:` or from the
//! file `prometheus_config:` names) and translates them into the sections' configs at load.

mod expand;
mod live;
pub mod prometheus;
mod redact;

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use expand::ExpandError;
pub use live::fixed_key_change;
pub use redact::redacted;

use crate::export::loki::LokiConfig;
use crate::export::remote_write::RemoteWriteConfig;
use crate::floor::HumanDuration;
use crate::ingest::IngestConfig;
use crate::logs::LogFilesConfig;
use crate::reload::ReloadConfig;
use crate::scrape::ScrapeConfig;
use crate::serve::ServeConfig;
use crate::spool::SpoolConfig;
use crate::view::ViewConfig;
use prometheus::PrometheusConfig;

/// The whole config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Address for reports, `/metrics`, `/healthz`, `/readyz` and `/v1/summary`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// On SIGTERM/SIGINT, how long queued samples may take to flush.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
    /// Connection limits and time limits of the listeners; the operations listener.
    #[serde(default)]
    pub serve: ServeConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// Keep remote-write batches on disk until delivered; absent = memory queues only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolConfig>,
    #[serde(default)]
    pub view: ViewConfig,
    /// Pull-based collection (istiod, sidecars' merged metrics); absent = no scraping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeConfig>,
    /// Loki endpoints for access logs (filter-shipped records and tailed files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LokiConfig>,
    /// Tail container-log files (DaemonSet mode); absent = no tailing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_files: Option<LogFilesConfig>,
    /// Prometheus' `global`, `scrape_configs` and `remote_write`, as written in a
    /// `prometheus.yml`; translated into `scrape.jobs` and `remote_write` at load (so the
    /// printed effective config shows them there), then empty.
    #[serde(default, skip_serializing)]
    pub prometheus: Option<PrometheusConfig>,
    /// SIGHUP, `POST /-/reload` and the file watch.
    #[serde(default)]
    pub reload: ReloadConfig,
}

/// The key naming a `prometheus.yml` to read into `prometheus:`.
const PROMETHEUS_FILE_KEY: &str = "prometheus_config";

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9091))
}

fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            listen: default_listen(),
            shutdown_timeout: default_shutdown_timeout(),
            serve: ServeConfig::default(),
            ingest: IngestConfig::default(),
            remote_write: Vec::new(),
            spool: None,
            view: ViewConfig::default(),
            scrape: None,
            logs: Vec::new(),
            log_files: None,
            prometheus: None,
            reload: ReloadConfig::default(),
        }
    }
}

/// Why a config was refused. The message always starts with the offending key's path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("not valid YAML: {0}")]
    Yaml(serde_yaml::Error),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error("{0}")]
    Invalid(String),
    #[error("the config is empty; a minimal one says where metrics go, for example:\n  remote_write:\n    - url: http://prometheus:9090/api/v1/write\n(a sink that only serves /v1/summary needs at least `listen: 0.0.0.0:9091`)")]
    Empty,
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })
}

/// The files a config is read from: `path` and the `prometheus_config:` file it names, if
/// any (what `reload.watch` reads).
pub fn source_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let named = read_file(path)
        .ok()
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
        .and_then(|tree| Some(tree.get(PROMETHEUS_FILE_KEY)?.as_str()?.to_owned()));
    if let Some(file) = named {
        files.push(path.parent().unwrap_or(Path::new(".")).join(file));
    }
    files
}

/// Replaces `prometheus_config: <file>` with `prometheus: <the file's document>`, the path
/// relative to `dir`.
fn include_prometheus_file(tree: &mut serde_yaml::Value, dir: &Path) -> Result<(), ConfigError> {
    let Some(map) = tree.as_mapping_mut() else {
        return Ok(());
    };
    let Some(file) = map.remove(PROMETHEUS_FILE_KEY) else {
        return Ok(());
    };
    let invalid = |why: String| ConfigError::Invalid(format!("{PROMETHEUS_FILE_KEY}: {why}"));
    let Some(file) = file.as_str() else {
        return Err(invalid(format!(
            "must be a file path, not {}",
            yaml_kind(&file)
        )));
    };
    if map.contains_key("prometheus") {
        return Err(invalid(
            "set either `prometheus:` or `prometheus_config:`, not both".into(),
        ));
    }
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let document: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| invalid(format!("{}: not valid YAML: {e}", path.display())))?;
    map.insert("prometheus".into(), document);
    Ok(())
}

/// What a YAML value is, in words.
fn yaml_kind(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a map",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

impl SinkConfig {
    /// Reads, expands (from the process environment) and checks a config file; a
    /// `prometheus_config:` file is read relative to its directory.
    pub fn load(path: &Path) -> Result<SinkConfig, ConfigError> {
        let text = read_file(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        SinkConfig::from_yaml_in(&text, dir, &|var| std::env::var(var).ok())
    }

    /// Parses, expands with `lookup` and checks a config document (a `prometheus_config:`
    /// file is read relative to the working directory).
    pub fn from_yaml(
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SinkConfig, ConfigError> {
        SinkConfig::from_yaml_in(text, Path::new("."), lookup)
    }

    /// Parses, expands with `lookup` and checks a config document whose relative
    /// `prometheus_config:` path starts at `dir`.
    pub fn from_yaml_in(
        text: &str,
        dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SinkConfig, ConfigError> {
        let mut tree: serde_yaml::Value = serde_yaml::from_str(text).map_err(ConfigError::Yaml)?;
        if tree.is_null() || tree.as_mapping().is_some_and(|m| m.is_empty()) {
            return Err(ConfigError::Empty);
        }
        if !tree.is_mapping() {
            return Err(ConfigError::Invalid(format!(
                "the config must be a map of keys such as `remote_write:`, not {}",
                yaml_kind(&tree)
            )));
        }
        include_prometheus_file(&mut tree, dir)?;
        let lists_jobs = tree
            .get("scrape")
            .and_then(|scrape| scrape.get("jobs"))
            .is_some();
        let expanded = expand::expand_tree(&mut tree, lookup)?;
        // Expanded values are strings; one that fills a number or boolean field is re-read as
        // such and the document deserialized again (at most once per expanded value).
        let config: SinkConfig = loop {
            match serde_path_to_error::deserialize(tree.clone()) {
                Ok(config) => break config,
                Err(e) => {
                    let path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    let retyped = inner.starts_with("invalid type: string")
                        && expanded
                            .iter()
                            .find(|x| x.path == path)
                            .is_some_and(|x| expand::retype(&mut tree, x));
                    if retyped {
                        continue;
                    }
                    return Err(ConfigError::Invalid(if path == "." {
                        inner
                    } else {
                        format!("{path}: {inner}")
                    }));
                }
            }
        };
        let mut config = config;
        config
            .absorb_prometheus(lists_jobs)
            .map_err(ConfigError::Invalid)?;
        config.check().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Moves the `prometheus:` section's jobs into `scrape.jobs` (a `scrape` section of its
    /// own defaults when absent; the default istiod job only when `scrape.jobs` lists it,
    /// `lists_jobs`) and its endpoints into `remote_write`.
    fn absorb_prometheus(&mut self, lists_jobs: bool) -> Result<(), String> {
        let Some(prometheus) = self.prometheus.take() else {
            return Ok(());
        };
        if let (Some(scrape), false) = (&mut self.scrape, lists_jobs) {
            if !prometheus.scrape_configs.is_empty() {
                scrape.jobs.clear();
            }
        }
        let taken: Vec<String> = self
            .scrape
            .iter()
            .flat_map(|s| s.jobs.iter().map(|j| j.name.clone()))
            .collect();
        let translated = prometheus.translate(&taken)?;
        if !translated.jobs.is_empty() {
            let scrape = self.scrape.get_or_insert_with(|| ScrapeConfig {
                jobs: Vec::new(),
                ..ScrapeConfig::default()
            });
            scrape.jobs.extend(translated.jobs);
        }
        self.remote_write.extend(translated.remote_write);
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if self.shutdown_timeout.is_zero() {
            return Err("shutdown_timeout: must be greater than 0".into());
        }
        self.serve.check()?;
        self.ingest.check()?;
        self.view.check()?;
        self.reload.check()?;
        if let Some(scrape) = &self.scrape {
            scrape.check()?;
        }
        for (i, rw) in self.remote_write.iter().enumerate() {
            rw.check(&format!("remote_write[{i}]"))?;
        }
        if let Some(spool) = &self.spool {
            let lanes = self.remote_write.iter().map(|rw| rw.queue.lanes);
            spool.check(lanes.chain(self.logs.iter().map(|_| 1)))?;
        }
        self.check_logs()?;
        let mut names: Vec<&str> = self
            .remote_write
            .iter()
            .map(|rw| rw.display_name())
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "remote_write: two endpoints are named {:?} (set `name`)",
                w[0]
            ));
        }
        Ok(())
    }
}

impl SinkConfig {
    fn check_logs(&self) -> Result<(), String> {
        for (i, loki) in self.logs.iter().enumerate() {
            loki.check(&format!("logs[{i}]"))?;
        }
        let mut names: Vec<&str> = self.logs.iter().map(|l| l.display_name()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "logs: two endpoints are named {:?} (set `name`)",
                w[0]
            ));
        }
        if let Some(files) = &self.log_files {
            files.check()?;
            // Without an endpoint the lines go to the live view only (nothing to acknowledge).
            if self.logs.is_empty() && !self.view.enabled {
                return Err(
                    "log_files: needs at least one `logs` endpoint or the live view (`view.enabled`) to send to"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::ByteSize;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_document_is_refused_and_one_key_takes_the_defaults() {
        for empty in ["", "# only a comment\n", "{}", "---\n"] {
            let err = SinkConfig::from_yaml(empty, &no_env).unwrap_err();
            assert!(matches!(err, ConfigError::Empty), "{empty:?}: {err}");
        }
        assert_eq!(
            SinkConfig::from_yaml("listen: 0.0.0.0:9091", &no_env).unwrap(),
            SinkConfig::default()
        );
    }

    #[test]
    fn spool_sizes_are_checked_against_the_lanes() {
        let c = SinkConfig::from_yaml("spool: {dir: /x, max_bytes: 64MiB}", &no_env).unwrap();
        assert_eq!(c.spool.unwrap().max_bytes, ByteSize::mib(64));
        let err = SinkConfig::from_yaml(
            "spool: {dir: /x, max_bytes: 64MiB}\nremote_write: [{url: 'http://a/', queue: {lanes: 4}}]",
            &no_env,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spool.max_bytes: 64MiB is less than two segments (16MiB) for each of 4 lanes"
        );
    }
}
