//! `reload.watch`: reads the config's files every `reload.watch_interval` and asks for a
//! reload when their content changed. A ConfigMap volume changes by an atomic swap of its
//! `..data` link, so reading the content (not watching inodes) sees every update.
//!
//! Owns the polling; it must not parse the config (the wiring gives it a fingerprint function).

use std::time::Duration;

use tokio::sync::watch;

use super::ReloadTrigger;

/// Polls `fingerprint` (a hash of the files' content, `None` when they cannot be read) every
/// `every` until `stop` turns true, and triggers a reload when it changed from the last one
/// seen. A refused config is not retried until the files change again.
pub async fn run_watch(
    every: Duration,
    fingerprint: impl Fn() -> Option<u64>,
    trigger: ReloadTrigger,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = fingerprint();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let now = fingerprint();
        if now.is_none() || now == last {
            continue;
        }
        last = now;
        tracing::info!("config file changed: reloading");
        // The outcome is logged and counted by the reloader.
        let _ = trigger.reload("config file changed").await;
    }
}
