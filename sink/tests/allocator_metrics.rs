//! The `meshtap-sink` binary's allocator: jemalloc with the options compiled into the binary
//! (its background thread that returns freed pages is running), and its counters on
//! `/metrics` consistent with each other and with the process's resident memory.

mod common;

use common::get_text;
use common::sink_process::SinkProcess;

const FAMILIES: [&str; 7] = [
    "allocated",
    "active",
    "metadata",
    "resident",
    "dirty",
    "mapped",
    "retained",
];

/// The value of the unlabelled gauge `meshtap_sink_allocator_<family>_bytes`.
fn gauge(metrics: &str, family: &str) -> u64 {
    let name = format!("meshtap_sink_allocator_{family}_bytes ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .unwrap_or_else(|| panic!("no {name}in /metrics:\n{metrics}"))
        .parse()
        .unwrap()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap();
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[tokio::test]
async fn the_binary_reports_jemallocs_counters_and_runs_its_options() {
    let dir = std::env::temp_dir().join(format!("meshtap-allocator-{}", std::process::id()));
    let sink = SinkProcess::start(&dir, "").await;
    let (status, metrics) = get_text(sink.addr, "/metrics").await;
    assert_eq!(status, 200);
    let [allocated, active, metadata, resident, dirty, mapped, _retained] =
        FAMILIES.map(|family| gauge(&metrics, family));
    assert!(allocated > 64 << 10, "allocated {allocated}");
    assert!(allocated <= active && active <= mapped, "{metrics}");
    assert!(dirty + metadata <= resident + (1 << 20), "{metrics}");
    assert!(
        resident <= resident_kib(sink.pid()) * 1024,
        "jemalloc's resident pages are part of the process's RSS"
    );
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", sink.pid()))
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap())
        .collect();
    assert!(
        threads.iter().any(|name| name.trim() == "jemalloc_bg_thd"),
        "the binary's malloc_conf (background_thread) is read: {threads:?}"
    );
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
}
