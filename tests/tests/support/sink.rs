//! A real meshtap-sink, started in-process on a free loopback port: writing remote-write to the
//! given URL with a short batch deadline so end-to-end tests see their samples quickly, or with
//! any other config (e.g. a `logs:` endpoint).

use meshtap_sink::{RunningSink, SinkConfig};
use tokio::runtime::Runtime;

pub struct Sink {
    pub runtime: Runtime,
    pub running: Option<RunningSink>,
}

impl Sink {
    pub fn start(write_url: &str, token: &str) -> Sink {
        Sink::with_sections(
            token,
            &format!(
                "remote_write:\n  - url: \"{write_url}\"\n    queue:\n      batch_send_deadline: 200ms\n"
            ),
        )
    }

    /// A sink on loopback accepting `token`, with the given top-level config sections.
    pub fn with_sections(token: &str, sections: &str) -> Sink {
        Sink::from_yaml(&format!(
            "listen: 127.0.0.1:0\ningest:\n  tokens: [\"{token}\"]\n{sections}"
        ))
    }

    /// A sink running the whole config `yaml` (such as the demo's, written by the simulator).
    pub fn from_yaml(yaml: &str) -> Sink {
        let config = SinkConfig::from_yaml(yaml, &|_| None).expect("the e2e sink config is valid");
        let runtime = Runtime::new().expect("tokio runtime");
        let running = runtime
            .block_on(RunningSink::start(&config))
            .expect("the sink starts");
        Sink {
            runtime,
            running: Some(running),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.running.as_ref().unwrap().local_addr())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
    }
}
