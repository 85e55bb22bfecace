//! The scrapers the scrape bench compares: the sink (in memory and with its disk spool; and an
//! earlier build of it, `MESHTAP_SINK_BIN_BEFORE`, both ways, for before/after pairs in one run),
//! Prometheus 2.42 in agent mode, and vmagent (Debian's `victoria-metrics`, 1.79) in its default
//! and `-promscrape.streamParse=true` modes. Each is started on the same targets, at the same
//! interval, with the same external label (`cluster`), remote-writing to the bench's counting
//! receiver; beside them `transport_only.rs`, which only fetches and posts. Owns
//! their configurations and command lines; it must not measure.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::measure::free_port;

pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
pub const VMAGENT_BIN: &str = "/usr/bin/vmagent";

/// One scraper under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Sink,
    SinkSpool,
    /// The earlier build, in memory.
    SinkBefore,
    /// The earlier build, with its spool.
    SinkSpoolBefore,
    Agent,
    Vmagent,
    VmagentStream,
    /// Fetch and post only: what no scraper can spend less than.
    TransportOnly,
}

/// Every contender, in the order they run and are printed (`sink-before` only when asked for).
pub const ALL: [Contender; 8] = [
    Contender::SinkBefore,
    Contender::SinkSpoolBefore,
    Contender::Sink,
    Contender::SinkSpool,
    Contender::Agent,
    Contender::Vmagent,
    Contender::VmagentStream,
    Contender::TransportOnly,
];

/// What a contender is started with.
pub struct Launch<'a> {
    pub dir: &'a Path,
    pub targets: &'a [SocketAddr],
    pub write: SocketAddr,
    pub interval: u64,
    pub series: usize,
    pub sink_bin: &'a PathBuf,
    pub sink_bin_before: Option<&'a PathBuf>,
}

impl Launch<'_> {
    fn before(&self) -> &PathBuf {
        self.sink_bin_before
            .expect("the earlier build's contenders need MESHTAP_SINK_BIN_BEFORE")
    }
}

impl Contender {
    /// The name given on the command line (`BENCH_CONTENDERS`).
    pub fn key(self) -> &'static str {
        match self {
            Contender::Sink => "sink",
            Contender::SinkSpool => "sink-spool",
            Contender::SinkBefore => "sink-before",
            Contender::SinkSpoolBefore => "sink-spool-before",
            Contender::Agent => "agent",
            Contender::Vmagent => "vmagent",
            Contender::VmagentStream => "vmagent-stream",
            Contender::TransportOnly => "transport",
        }
    }

    /// The name printed in the tables.
    pub fn title(self) -> &'static str {
        match self {
            Contender::Sink => "meshtap-sink",
            Contender::SinkSpool => "meshtap-sink + spool",
            Contender::SinkBefore => "meshtap-sink (before)",
            Contender::SinkSpoolBefore => "meshtap-sink + spool (before)",
            Contender::Agent => "prometheus 2.42 agent",
            Contender::Vmagent => "vmagent 1.79",
            Contender::VmagentStream => "vmagent 1.79 streamParse",
            Contender::TransportOnly => "transport only",
        }
    }

    /// Whether this is the earlier build's.
    pub fn is_before(self) -> bool {
        matches!(self, Contender::SinkBefore | Contender::SinkSpoolBefore)
    }

    pub fn start(self, at: &Launch<'_>) -> Child {
        let mut command = match self {
            Contender::Sink => sink(at, at.sink_bin, false),
            Contender::SinkSpool => sink(at, at.sink_bin, true),
            Contender::SinkBefore => sink(at, at.before(), false),
            Contender::SinkSpoolBefore => sink(at, at.before(), true),
            Contender::Agent => agent(at),
            Contender::Vmagent => vmagent(at, false),
            Contender::VmagentStream => vmagent(at, true),
            Contender::TransportOnly => {
                crate::transport_only::command(at.dir, at.series, at.targets, at.write, at.interval)
            }
        };
        // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent; it makes
        // the kernel kill the contender if the bench dies before killing it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.title()))
    }
}

fn target_list(targets: &[SocketAddr]) -> String {
    let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    quoted.join(", ")
}

fn sink(at: &Launch<'_>, bin: &Path, spool: bool) -> Command {
    let config = at.dir.join("sink.yaml");
    let spool = if spool {
        format!("spool:\n  dir: {}\n", at.dir.join("spool").display())
    } else {
        String::new()
    };
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{}\nremote_write:\n  - url: http://{}/api/v1/write\n    external_labels: {{cluster: bench}}\n{spool}scrape:\n  interval: {i}s\n  timeout: {i}s\n  jobs:\n    - name: bench\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: [{}]}}]\n",
            free_port(),
            at.write,
            target_list(at.targets),
            i = at.interval
        ),
    )
    .unwrap();
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(&config)
        .env("MESHTAP_LOG", "warn");
    command
}

/// A Prometheus-style scrape config (`global` and one job), as the agent and vmagent read it.
fn scrape_config(at: &Launch<'_>, name: &str, global_extra: &str) -> PathBuf {
    let config = at.dir.join(name);
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {i}s\n  scrape_timeout: {i}s\n{global_extra}scrape_configs:\n  - job_name: bench\n    metrics_path: /stats/prometheus\n    static_configs: [{{targets: [{}]}}]\n",
            target_list(at.targets),
            i = at.interval
        ),
    )
    .unwrap();
    config
}

fn agent(at: &Launch<'_>) -> Command {
    let config = scrape_config(
        at,
        "prometheus.yml",
        &format!(
            "  external_labels: {{cluster: bench}}\nremote_write:\n  - url: http://{}/api/v1/write\n",
            at.write
        ),
    );
    let mut command = Command::new(PROMETHEUS_BIN);
    command
        .arg("--enable-feature=agent")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.agent.path={}",
            at.dir.join("agent").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg("--log.level=warn")
        .stderr(Stdio::null());
    command
}

fn vmagent(at: &Launch<'_>, stream_parse: bool) -> Command {
    let config = scrape_config(at, "vmagent.yml", "");
    let mut command = Command::new(VMAGENT_BIN);
    command
        .arg(format!("-promscrape.config={}", config.display()))
        .arg(format!("-remoteWrite.url=http://{}/api/v1/write", at.write))
        .arg("-remoteWrite.label=cluster=bench")
        .arg(format!(
            "-remoteWrite.tmpDataPath={}",
            at.dir.join("vmagent").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{}", free_port()))
        .arg(format!("-promscrape.streamParse={stream_parse}"))
        .arg("-loggerLevel=ERROR")
        .stderr(Stdio::null());
    command
}
