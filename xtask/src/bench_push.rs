//! `cargo xtask bench push [--targets N] [--series N] [--interval SECONDS] [--seconds N]`:
//! builds the release `meshtap-sink` and runs `sink/benches/push_scrape.rs`, the sink's CPU and
//! memory per delivered sample when the filters push their reports against when it scrapes the
//! same series from 15020-shaped bodies, for one simulated mesh, in one run.
//!
//! Owns the options and the build; the measurement lives in the bench.

use anyhow::{bail, Context, Result};

use crate::process::run_sink_process_bench;

/// Option name → the bench's environment variable.
const OPTIONS: [(&str, &str); 4] = [
    ("--targets", "BENCH_TARGETS"),
    ("--series", "BENCH_SERIES"),
    ("--interval", "BENCH_INTERVAL_SECONDS"),
    ("--seconds", "BENCH_SECONDS"),
];

fn options(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some((_, var)) = OPTIONS.iter().find(|(name, _)| name == arg) else {
            bail!("unknown option {arg:?} for `bench push` (known: --targets, --series, --interval, --seconds)");
        };
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        value
            .parse::<u64>()
            .with_context(|| format!("{arg} takes a number, not {value:?}"))?;
        env.push((*var, value.clone()));
    }
    Ok(env)
}

pub fn command(args: &[String]) -> Result<()> {
    let env = options(args)?;
    run_sink_process_bench("push_scrape", env)
}
