//! The real `meshtap-sink` binary as a child process: started from a YAML document listening on
//! port 0 of the loopback (its address read from the "ready" line it logs), waited for until
//! `/readyz` answers, signalled, and killed on drop (also when a test panics). For tests of what
//! only a process shows: signals, crashes, restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use super::ready_line::ready_address;

/// A free TCP port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct SinkProcess {
    child: Child,
    pub addr: SocketAddr,
    /// stderr goes to a file, so a chatty sink never blocks on a full pipe.
    log_path: PathBuf,
}

impl SinkProcess {
    /// Writes `yaml` (after a `listen:` line of its own) to `dir/sink.yaml`, starts the binary
    /// and waits (at most 15 s) for `/readyz`.
    pub async fn start(dir: &Path, yaml: &str) -> SinkProcess {
        SinkProcess::start_with(dir, yaml, |_| {}).await
    }

    /// [`SinkProcess::start`], with `prepare` adjusting the command first (such as resource
    /// limits set in `pre_exec`).
    pub async fn start_with(
        dir: &Path,
        yaml: &str,
        prepare: impl FnOnce(&mut Command),
    ) -> SinkProcess {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        std::fs::create_dir_all(dir).unwrap();
        let config: PathBuf = dir.join("sink.yaml");
        std::fs::write(&config, format!("listen: 127.0.0.1:0\n{yaml}")).unwrap();
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log_path = dir.join(format!("sink-{}-{n}.log", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"));
        command
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
        prepare(&mut command);
        // Dropped on every early return: the child is killed and reaped.
        let mut sink = SinkProcess {
            child: command.spawn().unwrap(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(addr) = ready_address(&sink.log(), "listen") {
                if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await {
                    if r.status() == 200 {
                        sink.addr = addr;
                        return sink;
                    }
                }
            }
            if let Some(exit) = sink.child.try_wait().unwrap() {
                panic!("sink exited before it was ready: {exit:?}\n{}", sink.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sink never became ready\n{}", sink.log());
    }

    /// Sends a signal (`"TERM"`, `"KILL"`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits (at most 15 s) for the process to exit; returns its status and its log.
    pub async fn wait_exit(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "sink did not exit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (exit, self.log())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
