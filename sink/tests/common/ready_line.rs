//! Where a running `meshtap-sink` listens, read from its "meshtap-sink ready" log line: how a
//! sink started on port 0 is found. Plain std, so that `cargo xtask demo` includes this very
//! file (`#[path]`) as the sink's tests do; it must not grow dependencies.

use std::net::SocketAddr;

/// The address logged as `key` (`listen`, `ops_listen`) in the sink's "meshtap-sink ready"
/// line, in the text (`listen=…`, `ops_listen=Some(…)`) or the JSON log format.
pub fn ready_address(log: &str, key: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("meshtap-sink ready"))?;
    let at = [format!(" {key}="), format!("\"{key}\":")]
        .iter()
        .find_map(|pattern| line.find(pattern.as_str()).map(|i| i + pattern.len()))?;
    let rest = line[at..].trim_start_matches(['"', ' ']);
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}
