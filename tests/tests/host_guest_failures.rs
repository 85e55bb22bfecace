//! The host with tiny hand-assembled guests: a trap during start is captured and the VM is
//! bypassed (fail-open), and a module importing something the host lacks is refused up front.

use meshtap_tests::host::{
    Clock, FilterModule, HostError, HttpExchange, Proxy, ProxyConfig, VmStatus,
};

fn section(id: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128, "single-byte LEB128 sizes only");
    let mut out = vec![id, body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn name(text: &str) -> Vec<u8> {
    let mut out = vec![text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

/// `(module (import "env" <import>) (memory (export "memory") 1)
///   (func (export "_initialize") unreachable))`, optionally without the import.
fn trapping_module(import: Option<&str>) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend(section(1, &[1, 0x60, 0, 0])); // one type: [] -> []
    let mut defined_index = 0;
    if let Some(import) = import {
        let mut body = vec![1];
        body.extend(name("env"));
        body.extend(name(import));
        body.extend([0, 0]); // func of type 0
        wasm.extend(section(2, &body));
        defined_index = 1;
    }
    wasm.extend(section(3, &[1, 0])); // one function of type 0
    wasm.extend(section(5, &[1, 0, 1])); // one memory, min 1 page
    let mut exports = vec![2];
    exports.extend(name("memory"));
    exports.extend([2, 0]);
    exports.extend(name("_initialize"));
    exports.extend([0, defined_index]);
    wasm.extend(section(7, &exports));
    wasm.extend(section(10, &[1, 3, 0, 0x00, 0x0b])); // body: no locals, unreachable, end
    wasm
}

#[test]
fn a_trap_marks_the_vm_dead_and_traffic_bypasses_it() {
    let module = FilterModule::from_bytes(&trapping_module(None), false).unwrap();
    let config = ProxyConfig {
        workers: 2,
        clock: Clock::manual_now(),
        ..ProxyConfig::default()
    };
    let mut proxy = Proxy::start(module, config).unwrap();
    for status in proxy.vm_statuses() {
        let VmStatus::Trapped(message) = status else {
            panic!("expected a trapped VM, got {status:?}");
        };
        assert!(message.contains("_initialize"), "{message}");
    }
    let outcome = proxy.run_http_stream(1, &HttpExchange::default());
    assert!(outcome.bypassed, "a dead VM lets traffic through untouched");
    let errors = proxy
        .logs()
        .into_iter()
        .filter(|l| l.message.contains("trap in _initialize"))
        .count();
    assert_eq!(errors, 2, "one captured trap per worker");
}

#[test]
fn unknown_imports_are_refused_before_instantiation() {
    let result = FilterModule::from_bytes(&trapping_module(Some("proxy_new_thing")), false);
    match result {
        Err(HostError::UnsupportedImports(missing)) => {
            assert_eq!(missing, vec!["env.proxy_new_thing"])
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a module with an unknown import was accepted"),
    }
    match FilterModule::from_bytes(&trapping_module(Some("proxy_log")), false) {
        Err(HostError::UnsupportedImports(missing)) => {
            assert_eq!(missing, vec!["env.proxy_log (with a different signature)"])
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a known import with the wrong signature was accepted"),
    }
}
