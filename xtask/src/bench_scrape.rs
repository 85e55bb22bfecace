//! `cargo xtask bench scrape [--targets N] [--series N] [--interval SECONDS] [--seconds N]`:
//! builds the release `meshtap-sink` and runs the side-by-side bench (`sink/benches/
//! scrape_agent.rs`) against Prometheus 2.42 in agent mode on the same loopback targets.
//!
//! Owns the options and the build; the measurement itself lives in the bench.

use anyhow::{bail, Context, Result};

use crate::process::{cargo, has_program, run, target_dir};

/// Option name → the bench's environment variable.
const OPTIONS: [(&str, &str); 4] = [
    ("--targets", "BENCH_TARGETS"),
    ("--series", "BENCH_SERIES"),
    ("--interval", "BENCH_INTERVAL_SECONDS"),
    ("--seconds", "BENCH_SECONDS"),
];

pub fn command(args: &[String]) -> Result<()> {
    let mut env = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some((_, var)) = OPTIONS.iter().find(|(name, _)| name == arg) else {
            bail!("unknown option {arg:?} for `bench scrape` (known: --targets, --series, --interval, --seconds)");
        };
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        value
            .parse::<u64>()
            .with_context(|| format!("{arg} takes a number, not {value:?}"))?;
        env.push((*var, value.clone()));
    }
    if !has_program("/usr/bin/prometheus") {
        bail!("/usr/bin/prometheus is missing (Debian's `prometheus` package, 2.42)");
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "meshtap-sink",
        "--bin",
        "meshtap-sink",
    ]))?;
    let sink = target_dir().join("release/meshtap-sink");
    let mut bench = cargo();
    bench
        .args(["bench", "-p", "meshtap-sink", "--bench", "scrape_agent"])
        .env("MESHTAP_SINK_BIN", &sink)
        .envs(env);
    run(&mut bench)
}
