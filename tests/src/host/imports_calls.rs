//! `env.proxy_*` imports for outgoing calls and stream control: `proxy_http_call` as a real
//! HTTP/1.1 request in the background, gRPC and foreign functions answered with Envoy's
//! statuses for a proxy that has none configured, local replies and continue/close.
//!
//! Completions are only *sent* from here (over the VM's channel); delivering them to the guest
//! is the worker VM's job, on its own thread.

use std::time::Duration;

use wasmtime::{Caller, Linker};

use super::abi::{decode_map, Status};
use super::guest::{read, read_string, write_u32, HostResult};
use super::http_client;
use super::shared::DispatchedCall;
use super::vm_state::{CallCompletion, VmState};

/// Adds this module's imports to the linker.
pub fn define(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_http_call", proxy_http_call)?;
    linker.func_wrap("env", "proxy_grpc_call", proxy_grpc_call)?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Caller<'_, VmState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> HostResult {
            // No gRPC service is configured in this proxy: Envoy fails to resolve it.
            c.data_mut().host_calls += 1;
            Ok(Status::BadArgument.code())
        },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        linker.func_wrap(
            "env",
            name,
            |mut c: Caller<'_, VmState>, _token: i32| -> HostResult {
                c.data_mut().host_calls += 1;
                Ok(Status::NotFound.code())
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut c: Caller<'_, VmState>, _token: i32, _: i32, _: i32, _: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            Ok(Status::NotFound.code())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Caller<'_, VmState>, _code: i32, _ptr: i32, _len: i32| -> HostResult {
            // Only meaningful inside gRPC callbacks, which this proxy never delivers.
            c.data_mut().host_calls += 1;
            Ok(Status::NotFound.code())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Caller<'_, VmState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> HostResult {
            // No foreign functions are registered.
            c.data_mut().host_calls += 1;
            Ok(Status::NotFound.code())
        },
    )?;
    for name in ["proxy_continue_stream", "proxy_close_stream"] {
        linker.func_wrap(
            "env",
            name,
            |mut c: Caller<'_, VmState>, stream: i32| -> HostResult {
                c.data_mut().host_calls += 1;
                // Request/response (0/1) in HTTP contexts, downstream/upstream (2/3) in TCP ones.
                let state = c.data();
                let known = (state.current_stream().is_some() && (0..=1).contains(&stream))
                    || (state.current_connection().is_some() && (2..=3).contains(&stream));
                Ok(if known {
                    Status::Ok.code()
                } else {
                    Status::BadArgument.code()
                })
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        proxy_send_local_response,
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn proxy_http_call(
    mut c: Caller<'_, VmState>,
    up_ptr: i32,
    up_len: i32,
    hdr_ptr: i32,
    hdr_len: i32,
    body_ptr: i32,
    body_len: i32,
    trl_ptr: i32,
    trl_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let args = read_string(&mut c, up_ptr, up_len).and_then(|cluster| {
        let headers = read(&mut c, hdr_ptr, hdr_len)?;
        let body = read(&mut c, body_ptr, body_len)?;
        let trailers = read(&mut c, trl_ptr, trl_len)?;
        Ok((cluster, headers, body, trailers))
    });
    let (cluster, headers, body, trailers) = match args {
        Ok(a) => a,
        Err(status) => return Ok(status.code()),
    };
    let (Some(headers), Some(_trailers)) = (decode_map(&headers), decode_map(&trailers)) else {
        return Ok(Status::ParseFailure.code());
    };
    let Some(addr) = c.data().shared.cluster(&cluster) else {
        return Ok(Status::BadArgument.code());
    };
    let has = |name: &str| headers.iter().any(|(k, v)| k == name && !v.is_empty());
    if !has(":path") || !has(":method") || !has(":authority") {
        return Ok(Status::BadArgument.code());
    }
    let state = c.data_mut();
    state.next_token += 1;
    let token = state.next_token;
    state.pending_calls.insert(token, state.current_context);
    state.shared.push_call(DispatchedCall {
        worker: state.worker,
        cluster,
        headers: headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body_len: body.len(),
        timeout_ms: timeout_ms as u32,
    });
    let tx = state.calls_tx.clone();
    let (worker, generation) = (state.worker, state.generation);
    let timeout = (timeout_ms != 0).then(|| Duration::from_millis(u64::from(timeout_ms as u32)));
    std::thread::spawn(move || {
        let result = http_client::send(addr, &headers, &body, timeout).map_err(|e| e.to_string());
        // The proxy may be gone; then nobody waits for this call.
        let _ = tx.send(CallCompletion {
            worker,
            generation,
            token,
            result,
        });
    });
    if let Err(status) = write_u32(&mut c, ret_token, token) {
        return Ok(status.code());
    }
    Ok(Status::Ok.code())
}

#[allow(clippy::too_many_arguments)]
fn proxy_grpc_call(
    mut c: Caller<'_, VmState>,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
    _: i32,
) -> HostResult {
    // No gRPC service is configured in this proxy: Envoy fails to resolve it.
    c.data_mut().host_calls += 1;
    Ok(Status::BadArgument.code())
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    mut c: Caller<'_, VmState>,
    status_code: i32,
    _details_ptr: i32,
    _details_len: i32,
    _body_ptr: i32,
    _body_len: i32,
    _headers_ptr: i32,
    _headers_len: i32,
    _grpc_status: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let Some(stream) = c.data_mut().current_stream_mut() else {
        return Ok(Status::BadArgument.code());
    };
    stream.local_response = Some(status_code as u32);
    Ok(Status::Ok.code())
}
