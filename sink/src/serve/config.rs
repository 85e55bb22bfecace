//! The `serve` config section: the operations listener, connection limits and the timeouts that
//! keep slow or silent clients from holding connections.
//!
//! Owns the keys, their defaults and checks only; [`super::limits`] turns the limits into
//! numbers and the rest of [`super`] applies them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::floor::HumanDuration;

/// `serve:` — how the HTTP listeners treat their connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// A second listener for `/healthz`, `/readyz` and `/metrics` only, with its own connection
    /// limit, so that they answer while the report listener is full. Absent = none (they are
    /// always served on `listen` too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ops_listen: Option<SocketAddr>,
    /// A request head (request line and headers) must arrive within this time of its first byte
    /// (of the connection's start, for its first request).
    pub header_read_timeout: HumanDuration,
    /// A request body must arrive whole within this time of its head (408 otherwise).
    pub body_read_timeout: HumanDuration,
    /// A connection waiting for its next request, or for its client to take an answer, is
    /// closed after this time.
    pub idle_timeout: HumanDuration,
    /// Concurrent connections on `listen`; absent = half the process's open-file limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Concurrent connections on `ops_listen`.
    pub ops_max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            ops_listen: None,
            header_read_timeout: HumanDuration::from_secs(10),
            body_read_timeout: HumanDuration::from_secs(30),
            idle_timeout: HumanDuration::from_secs(90),
            max_connections: None,
            ops_max_connections: 16,
        }
    }
}

/// The three time limits of a connection, as the connections apply them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header_read: Duration,
    pub body_read: Duration,
    pub idle: Duration,
}

impl ServeConfig {
    /// Rules serde cannot express; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        let timeouts = [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ];
        if let Some((key, _)) = timeouts.iter().find(|(_, t)| t.is_zero()) {
            return Err(format!("serve.{key}: must be greater than 0"));
        }
        if self.max_connections == Some(0) {
            return Err("serve.max_connections: must be at least 1".into());
        }
        if self.ops_max_connections == 0 {
            return Err("serve.ops_max_connections: must be at least 1".into());
        }
        Ok(())
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: self.header_read_timeout.get(),
            body_read: self.body_read_timeout.get(),
            idle: self.idle_timeout.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ServeConfig, String> {
        let config: ServeConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    #[test]
    fn defaults_bound_every_phase_of_a_connection() {
        let config = parse("{}").unwrap();
        assert_eq!(config, ServeConfig::default());
        assert_eq!(
            config.timeouts(),
            Timeouts {
                header_read: Duration::from_secs(10),
                body_read: Duration::from_secs(30),
                idle: Duration::from_secs(90),
            }
        );
        assert_eq!(config.ops_listen, None);
        assert_eq!(config.max_connections, None);
    }

    #[test]
    fn zero_timeouts_and_limits_are_refused_by_key() {
        for (yaml, error) in [
            (
                "header_read_timeout: '0'",
                "serve.header_read_timeout: must be greater than 0",
            ),
            (
                "body_read_timeout: 0s",
                "serve.body_read_timeout: must be greater than 0",
            ),
            (
                "idle_timeout: 0ms",
                "serve.idle_timeout: must be greater than 0",
            ),
            (
                "max_connections: 0",
                "serve.max_connections: must be at least 1",
            ),
            (
                "ops_max_connections: 0",
                "serve.ops_max_connections: must be at least 1",
            ),
        ] {
            assert_eq!(parse(yaml).unwrap_err(), error, "{yaml}");
        }
    }

    #[test]
    fn an_ops_listener_and_a_fixed_limit_are_read() {
        let config =
            parse("{ops_listen: '127.0.0.1:9092', max_connections: 500, idle_timeout: 2m}")
                .unwrap();
        assert_eq!(config.ops_listen, Some("127.0.0.1:9092".parse().unwrap()));
        assert_eq!(config.max_connections, Some(500));
        assert_eq!(config.timeouts().idle, Duration::from_secs(120));
    }
}
