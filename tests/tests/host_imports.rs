//! The host provides the whole proxy-wasm ABI v0.2.1 import surface and the WASI shims
//! proxy-wasm-cpp-host provides — nothing less (a filter using any of them must instantiate).

use meshtap_tests::host::provided_imports;

const ABI_0_2_1: [&str; 39] = [
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_size",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_set_effective_context",
    "proxy_call_foreign_function",
    "proxy_done",
    "proxy_define_metric",
    "proxy_record_metric",
    "proxy_increment_metric",
    "proxy_get_metric",
];

const WASI: [&str; 8] = [
    "fd_write",
    "environ_get",
    "environ_sizes_get",
    "args_get",
    "args_sizes_get",
    "clock_time_get",
    "random_get",
    "proc_exit",
];

#[test]
fn every_abi_and_wasi_import_is_provided() {
    let provided = provided_imports();
    for name in ABI_0_2_1 {
        assert!(
            provided.contains(&format!("env.{name}")),
            "env.{name} missing"
        );
    }
    for name in WASI {
        assert!(
            provided.contains(&format!("wasi_snapshot_preview1.{name}")),
            "wasi_snapshot_preview1.{name} missing"
        );
    }
    let env_count = provided.iter().filter(|p| p.starts_with("env.")).count();
    assert_eq!(env_count, 39, "{provided:?}");
}
