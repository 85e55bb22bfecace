//! `cargo xtask bench scrape [--targets N[,N…]] [--series N] [--interval SECONDS] [--seconds N]
//! [--contenders LIST] [--rounds N] [--short]`: installs the peers (Debian's `prometheus` and
//! `victoria-metrics` for vmagent), builds the release `meshtap-sink` and runs the bench
//! (`sink/benches/scrape_agent.rs`): the sink, the sink with its spool, Prometheus' agent mode
//! and vmagent on the same loopback targets, at each number of targets given, `--rounds` times
//! in turn (each contender's median round is compared; contenders joined by `+` in `--contenders`
//! run at the same time, for ratios within a round). `--short` is a
//! quick scale curve: 50, 200 and 500 targets, 20 s measured each.
//!
//! Owns the options, the installs and the build; the measurement itself lives in the bench.

use anyhow::{bail, Context, Result};

use crate::install;
use crate::process::run_sink_process_bench;

/// Option name → the bench's environment variable.
const OPTIONS: [(&str, &str); 6] = [
    ("--targets", "BENCH_TARGETS"),
    ("--series", "BENCH_SERIES"),
    ("--interval", "BENCH_INTERVAL_SECONDS"),
    ("--seconds", "BENCH_SECONDS"),
    ("--contenders", "BENCH_CONTENDERS"),
    ("--rounds", "BENCH_ROUNDS"),
];

/// What `--short` sets (options given after it win).
const SHORT: [(&str, &str); 2] = [("BENCH_TARGETS", "50,200,500"), ("BENCH_SECONDS", "20")];

fn options(args: &[String]) -> Result<Vec<(&'static str, String)>> {
    let mut env = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--short" {
            env.extend(SHORT.iter().map(|(var, value)| (*var, value.to_string())));
            continue;
        }
        let Some((_, var)) = OPTIONS.iter().find(|(name, _)| name == arg) else {
            bail!("unknown option {arg:?} for `bench scrape` (known: --targets, --series, --interval, --seconds, --contenders, --rounds, --short)");
        };
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        if *var != "BENCH_CONTENDERS" {
            for number in value.split(',') {
                number
                    .parse::<u64>()
                    .with_context(|| format!("{arg} takes numbers, not {value:?}"))?;
            }
        }
        env.push((*var, value.clone()));
    }
    Ok(env)
}

pub fn command(args: &[String]) -> Result<()> {
    let env = options(args)?;
    install::prometheus()?;
    install::vmagent()?;
    run_sink_process_bench("scrape_agent", env)
}
