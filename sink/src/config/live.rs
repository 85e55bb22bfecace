//! Which keys a reload may change: `remote_write` (and `prometheus.remote_write`) and
//! `scrape.jobs` (and `prometheus.scrape_configs`) change live; every other key needs a
//! restart, and a reload that changes one is refused naming it.
//!
//! Owns that list and the comparison; it must not apply anything.

use serde_json::Value;

use super::SinkConfig;

/// The keys that change live, as paths into the serialized config.
const LIVE_KEYS: [&[&str]; 2] = [&["remote_write"], &["scrape", "jobs"]];

/// The first key path (such as `serve.ops_listen`) whose value differs between `running` and
/// `new` and cannot change without a restart; `None` when the reload can be applied.
pub fn fixed_key_change(running: &SinkConfig, new: &SinkConfig) -> Option<String> {
    let mut running = serde_json::to_value(running).expect("a config serializes");
    let mut new = serde_json::to_value(new).expect("a config serializes");
    for path in LIVE_KEYS {
        blank(&mut running, path);
        blank(&mut new, path);
    }
    first_difference(&running, &new, String::new())
}

/// Replaces the value at `path` (when present) by `null`.
fn blank(tree: &mut Value, path: &[&str]) {
    let mut at = tree;
    for key in path {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    *at = Value::Null;
}

fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    let join = |key: &str| match path.is_empty() {
        true => key.to_owned(),
        false => format!("{path}.{key}"),
    };
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            keys.into_iter().find_map(|key| {
                let (x, y) = (a.get(key), b.get(key));
                let null = Value::Null;
                first_difference(x.unwrap_or(&null), y.unwrap_or(&null), join(key))
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(if path.is_empty() { ".".into() } else { path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> SinkConfig {
        SinkConfig::from_yaml(yaml, &|_| None).unwrap()
    }

    #[test]
    fn endpoints_and_jobs_change_live_other_keys_are_named() {
        let running = config("remote_write: [{url: 'http://a/'}]\nscrape: {jobs: []}");
        let live = config("remote_write: [{url: 'http://b/'}, {url: 'http://c/'}]\nscrape: {jobs: [{name: x, static_configs: [{targets: ['h:1']}]}]}");
        assert_eq!(fixed_key_change(&running, &live), None);
        let ops = config("remote_write: [{url: 'http://a/'}]\nscrape: {jobs: []}\nserve: {ops_listen: '127.0.0.1:1'}");
        assert_eq!(
            fixed_key_change(&running, &ops).as_deref(),
            Some("serve.ops_listen")
        );
        let interval =
            config("remote_write: [{url: 'http://a/'}]\nscrape: {jobs: [], interval: 1m}");
        assert_eq!(
            fixed_key_change(&running, &interval).as_deref(),
            Some("scrape.interval")
        );
        let spool =
            config("remote_write: [{url: 'http://a/'}]\nscrape: {jobs: []}\nspool: {dir: /x}");
        assert_eq!(fixed_key_change(&running, &spool).as_deref(), Some("spool"));
        let tokens = config(
            "remote_write: [{url: 'http://a/'}]\nscrape: {jobs: []}\ningest: {tokens: [a, b]}",
        );
        assert_eq!(
            fixed_key_change(&running, &tokens).as_deref(),
            Some("ingest.tokens")
        );
    }
}
