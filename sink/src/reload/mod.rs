//! Reload: taking a changed config without a restart. SIGHUP, `POST /-/reload` ([`http`]) and
//! the optional file watch ([`watch`]) all send a [`ReloadRequest`] through one
//! [`ReloadTrigger`]; the wiring (`server::reload`) handles them one at a time: it re-reads the
//! config file, refuses changes to keys that cannot change live, applies the rest to the
//! stages, and counts the outcome in [`metrics`].
//!
//! Owns the trigger channel, the `reload:` keys, the route, the watch and the metrics; it must
//! not read the config document nor touch a stage itself.

pub mod config;
pub mod http;
pub mod metrics;
pub mod watch;

use tokio::sync::{mpsc, oneshot};

pub use config::ReloadConfig;
pub use metrics::ReloadMetrics;

/// One request to reload: what asked for it, and where the outcome goes (the error names the
/// key path).
pub struct ReloadRequest {
    pub cause: &'static str,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Asks the sink's reloader to reload; cheap to clone.
#[derive(Clone)]
pub struct ReloadTrigger(mpsc::Sender<ReloadRequest>);

impl ReloadTrigger {
    /// A trigger and the receiving end the reloader serves.
    pub fn channel() -> (ReloadTrigger, mpsc::Receiver<ReloadRequest>) {
        let (tx, rx) = mpsc::channel(8);
        (ReloadTrigger(tx), rx)
    }

    /// Reloads and waits for the outcome (requests are served one at a time, in order).
    pub async fn reload(&self, cause: &'static str) -> Result<(), String> {
        let (reply, outcome) = oneshot::channel();
        self.0
            .send(ReloadRequest { cause, reply })
            .await
            .map_err(|_| "the sink is shutting down".to_owned())?;
        outcome
            .await
            .unwrap_or_else(|_| Err("the sink is shutting down".to_owned()))
    }
}
