//! How many connections each listener may hold, from `serve:` and the process's open-file limit.
//!
//! Owns the arithmetic and the start-up warning only; the listeners enforce the numbers.

use super::config::ServeConfig;

/// Descriptors the sink needs besides inbound connections even when small: the listeners, the
/// runtime, logs, a spool segment and ack file per lane, a few outgoing connections.
const MIN_OTHER_DESCRIPTORS: u64 = 64;

/// The automatic report limit never exceeds this, whatever the open-file limit.
const MAX_AUTO_CONNECTIONS: u64 = 1 << 20;

/// The connection limit of each listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `listen`.
    pub report: usize,
    /// `ops_listen` (unused without one).
    pub ops: usize,
}

/// The soft `RLIMIT_NOFILE` of this process, `None` when unlimited or unreadable.
pub fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

impl ConnectionLimits {
    /// `serve.max_connections`, or half of `descriptor_limit` when absent: the other half stays
    /// for the operations listener, outgoing connections (remote-write, Loki, scrape targets),
    /// spool segments and tailed files. Logs a warning when a configured limit leaves fewer
    /// than [`MIN_OTHER_DESCRIPTORS`] descriptors for the rest.
    pub fn resolve(config: &ServeConfig, descriptor_limit: Option<u64>) -> ConnectionLimits {
        let ops = if config.ops_listen.is_some() {
            config.ops_max_connections
        } else {
            0
        };
        let report = config.max_connections.unwrap_or_else(|| {
            let half = descriptor_limit.map_or(MAX_AUTO_CONNECTIONS, |n| n / 2);
            half.clamp(1, MAX_AUTO_CONNECTIONS) as usize
        });
        if let Some(limit) = descriptor_limit {
            let inbound = (report + ops) as u64;
            if inbound + MIN_OTHER_DESCRIPTORS > limit {
                tracing::warn!(
                    max_connections = report,
                    ops_max_connections = ops,
                    descriptor_limit = limit,
                    "serve: the connection limits leave fewer than {MIN_OTHER_DESCRIPTORS} of the process's open files for everything else; raise the limit (ulimit -n) or lower serve.max_connections"
                );
            }
        }
        ConnectionLimits { report, ops }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ServeConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_automatic_limit_is_half_the_descriptors() {
        let limits = ConnectionLimits::resolve(&config("ops_listen: 127.0.0.1:0"), Some(256));
        assert_eq!(
            limits,
            ConnectionLimits {
                report: 128,
                ops: 16
            }
        );
        let limits = ConnectionLimits::resolve(&config("{}"), Some(1024));
        assert_eq!(
            limits,
            ConnectionLimits {
                report: 512,
                ops: 0
            }
        );
        let limits = ConnectionLimits::resolve(&config("{}"), Some(1));
        assert_eq!(limits.report, 1);
        let limits = ConnectionLimits::resolve(&config("{}"), None);
        assert_eq!(limits.report, MAX_AUTO_CONNECTIONS as usize);
    }

    #[test]
    fn configured_limits_win() {
        let limits = ConnectionLimits::resolve(
            &config("{max_connections: 40, ops_listen: '[::1]:0', ops_max_connections: 3}"),
            Some(256),
        );
        assert_eq!(limits, ConnectionLimits { report: 40, ops: 3 });
    }

    #[test]
    fn the_open_file_limit_is_the_kernels_soft_limit() {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft = line.split_whitespace().nth(3).unwrap();
        assert_eq!(descriptor_limit(), soft.parse().ok(), "{line}");
    }
}
