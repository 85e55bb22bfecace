//! The compiled filter in V8, the engine Istio's Envoy runs it on: the `.wasm` uses wasm SIMD
//! (`simd128`, filter/README.md "Runtimes"), so this checks that it really does (an engine with
//! SIMD turned off refuses it) and that Node's V8 validates and compiles every function of it with
//! the flags Envoy gives V8 (`--no-liftoff`: the optimizing compiler only), eagerly. It does not
//! run the module: the host tests do that in wasmtime.

use std::process::Command;

use meshtap_tests::filter_wasm::locate;

/// Compiles the module at `process.argv[1]` and prints its import names, one per line.
const COMPILE_SCRIPT: &str = r#"
const bytes = require("fs").readFileSync(process.argv[1]);
if (!WebAssembly.validate(bytes)) { console.error("V8 refuses the module"); process.exit(2); }
const module = new WebAssembly.Module(bytes);
for (const i of WebAssembly.Module.imports(module)) console.log(i.module + "." + i.name);
"#;

#[test]
fn the_filter_needs_wasm_simd() {
    let wasm = locate().unwrap_or_else(|e| panic!("{e}"));
    let mut config = wasmtime::Config::new();
    config.wasm_relaxed_simd(false).wasm_simd(false);
    let engine = wasmtime::Engine::new(&config).expect("an engine without SIMD");
    let refused = wasmtime::Module::from_file(&engine, &wasm);
    assert!(refused.is_err(), "the filter compiled without SIMD");
    let plain = wasmtime::Engine::default();
    wasmtime::Module::from_file(&plain, &wasm).expect("wasmtime with SIMD compiles the filter");
}

#[test]
fn node_v8_compiles_the_filter_as_envoy_configures_v8() {
    let wasm = locate().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new("node")
        .args([
            "--no-liftoff",
            "--no-wasm-lazy-compilation",
            "-e",
            COMPILE_SCRIPT,
        ])
        .arg(&wasm)
        .output()
        .expect("node runs (the V8 tests need it: Debian's nodejs)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}");
    let imports = String::from_utf8_lossy(&output.stdout);
    for import in ["env.proxy_get_property", "wasi_snapshot_preview1.fd_write"] {
        assert!(
            imports.lines().any(|l| l == import),
            "{import} in {imports}"
        );
    }
}
