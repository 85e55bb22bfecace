//! Rates measured in this thread's CPU time, for the benches that print per-core figures
//! beside criterion's wall-clock ones.

use std::time::{Duration, Instant};

/// CPU time this thread has used, from `/proc/thread-self/schedstat` (ns on CPU); `None`
/// where that file does not exist.
pub fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Items per second of `f` (which handles `items` per call) over about `budget`: per
/// wall-clock second, and per CPU second of this thread (the per-core figure, unaffected by
/// other processes on a shared machine).
pub fn rate(items: usize, budget: Duration, mut f: impl FnMut()) -> (f64, Option<f64>) {
    f();
    let start = Instant::now();
    let cpu_start = thread_cpu_time();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        f();
        runs += 1;
    }
    let total = items as f64 * runs as f64;
    let wall = total / start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(thread_cpu_time())
        .map(|(a, b)| total / (b - a).as_secs_f64());
    (wall, cpu)
}

/// A per-CPU rate in millions, or `n/a`.
pub fn per_cpu(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{:.2}", r / 1e6))
}
