//! `env.proxy_*` imports for logging, time, ticks, buffers, header maps, properties and context
//! control, with the statuses Envoy returns.
//!
//! Only guest-facing glue: each function reads arguments from guest memory, consults the VM
//! state, and writes results back. Shared stores and calls live in sibling modules.

use wasmtime::{Caller, Linker};

use super::abi::{buffer_type, map_type, HeaderPairs, LogLevel, Status};
use super::guest::{copy_out, read, read_string, status_of, write_u32, write_u64, HostResult};
use super::properties::Phase;
use super::shared::LogEntry;
use super::vm_state::VmState;

/// Adds this module's imports to the linker.
pub fn define(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", proxy_log)?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Caller<'_, VmState>, ret: i32| {
            c.data_mut().host_calls += 1;
            let level = c.data().log_level as u32;
            Ok::<i32, wasmtime::Error>(status_of(write_u32(&mut c, ret, level)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, VmState>, ret: i32| {
            c.data_mut().host_calls += 1;
            let now = c.data().clock.now_nanos();
            Ok::<i32, wasmtime::Error>(status_of(write_u64(&mut c, ret, now)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, VmState>, period_ms: i32| {
            // The period belongs to the root context of the calling context (Envoy).
            let state = c.data_mut();
            state.host_calls += 1;
            let now = state.clock.now_nanos();
            let Some(root) = state.current_root_mut() else {
                return Ok::<i32, wasmtime::Error>(Status::BadArgument.code());
            };
            let period = period_ms as u32;
            if period == 0 {
                root.tick_period = None;
            } else {
                let period = std::time::Duration::from_millis(u64::from(period));
                root.tick_period = Some(period);
                root.next_tick_nanos = now + period.as_nanos() as u64;
            }
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", proxy_get_buffer_bytes)?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", proxy_set_buffer_bytes)?;
    linker.func_wrap("env", "proxy_get_buffer_status", proxy_get_buffer_status)?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        proxy_get_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        proxy_get_header_map_size,
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        proxy_set_header_map_pairs,
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        proxy_get_header_map_value,
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |c: Caller<'_, VmState>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            mutate_header(c, t, kp, kl, Some((vp, vl)), HeaderEdit::Add)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |c: Caller<'_, VmState>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            mutate_header(c, t, kp, kl, Some((vp, vl)), HeaderEdit::Replace)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |c: Caller<'_, VmState>, t: i32, kp: i32, kl: i32| {
            mutate_header(c, t, kp, kl, None, HeaderEdit::Remove)
        },
    )?;
    linker.func_wrap("env", "proxy_get_property", proxy_get_property)?;
    linker.func_wrap("env", "proxy_set_property", proxy_set_property)?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, VmState>, context: i32| {
            let state = c.data_mut();
            state.host_calls += 1;
            let context = context as u32;
            if !state.has_context(context) {
                return Ok::<i32, wasmtime::Error>(Status::BadArgument.code());
            }
            state.current_context = context;
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut c: Caller<'_, VmState>| {
        let state = c.data_mut();
        state.host_calls += 1;
        let context = state.current_context;
        state.done_contexts.push(context);
        Ok::<i32, wasmtime::Error>(Status::Ok.code())
    })?;
    Ok(())
}

fn proxy_log(mut c: Caller<'_, VmState>, level: i32, ptr: i32, len: i32) -> HostResult {
    c.data_mut().host_calls += 1;
    let Some(level) = LogLevel::from_abi(level) else {
        return Ok(Status::BadArgument.code());
    };
    let message = match read(&mut c, ptr, len) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(status) => return Ok(status.code()),
    };
    let worker = c.data().worker;
    log_line(c.data(), worker, level, message);
    Ok(Status::Ok.code())
}

/// Records a guest log line in the proxy's log and mirrors it to `tracing`.
pub fn log_line(state: &VmState, worker: usize, level: LogLevel, message: String) {
    let vm_id = state.shared.vm_id();
    match level {
        LogLevel::Trace | LogLevel::Debug => tracing::debug!(vm_id, worker, "{message}"),
        LogLevel::Info => tracing::info!(vm_id, worker, "{message}"),
        LogLevel::Warn => tracing::warn!(vm_id, worker, "{message}"),
        LogLevel::Error | LogLevel::Critical => tracing::error!(vm_id, worker, "{message}"),
    }
    state.shared.push_log(LogEntry {
        worker,
        level,
        message,
    });
}

/// The bytes of a buffer type as visible from the current context. Body and data buffers are
/// the chunk of the callback in progress; outside it (or in another kind of context) Envoy
/// serves an empty buffer.
fn buffer(state: &VmState, kind: i32) -> Option<&[u8]> {
    let stream = state.current_stream();
    let connection = state.current_connection();
    match kind {
        buffer_type::HTTP_REQUEST_BODY => Some(stream.map_or(&[][..], |s| &s.request_body)),
        buffer_type::HTTP_RESPONSE_BODY => Some(stream.map_or(&[][..], |s| &s.response_body)),
        buffer_type::DOWNSTREAM_DATA => Some(connection.map_or(&[][..], |c| &c.downstream_data)),
        buffer_type::UPSTREAM_DATA => Some(connection.map_or(&[][..], |c| &c.upstream_data)),
        buffer_type::HTTP_CALL_RESPONSE_BODY => state.call_response.as_ref().map(|r| &r.body[..]),
        buffer_type::VM_CONFIGURATION => Some(&state.vm_config),
        buffer_type::PLUGIN_CONFIGURATION => state.current_root().map(|r| &r.plugin_config[..]),
        _ => None,
    }
}

fn proxy_get_buffer_bytes(
    mut c: Caller<'_, VmState>,
    kind: i32,
    start: i32,
    max_size: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let Some(data) = buffer(c.data(), kind) else {
        return Ok(Status::NotFound.code());
    };
    let (start, max) = (start as u32 as usize, max_size as u32 as usize);
    if start.checked_add(max).is_none() {
        return Ok(Status::BadArgument.code());
    }
    let end = data.len().min(start + max);
    let slice = data.get(start.min(end)..end).unwrap_or_default().to_vec();
    copy_out(&mut c, &slice, ret_ptr, ret_len)
}

fn proxy_set_buffer_bytes(
    mut c: Caller<'_, VmState>,
    kind: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let value = match read(&mut c, ptr, len) {
        Ok(v) => v,
        Err(status) => return Ok(status.code()),
    };
    let state = c.data_mut();
    let context = state.current_context;
    let body = match (kind, state.streams.get_mut(&context)) {
        (buffer_type::HTTP_REQUEST_BODY, Some(stream)) => &mut stream.request_body,
        (buffer_type::HTTP_RESPONSE_BODY, Some(stream)) => &mut stream.response_body,
        _ => match (kind, state.connections.get_mut(&context)) {
            (buffer_type::DOWNSTREAM_DATA, Some(conn)) => &mut conn.downstream_data,
            (buffer_type::UPSTREAM_DATA, Some(conn)) => &mut conn.upstream_data,
            _ => return Ok(Status::NotFound.code()),
        },
    };
    let start = (start as u32 as usize).min(body.len());
    let end = start.saturating_add(size as u32 as usize).min(body.len());
    body.splice(start..end, value);
    Ok(Status::Ok.code())
}

fn proxy_get_buffer_status(
    mut c: Caller<'_, VmState>,
    kind: i32,
    ret_len: i32,
    ret_flags: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let Some(len) = buffer(c.data(), kind).map(<[u8]>::len) else {
        return Ok(Status::NotFound.code());
    };
    let written =
        write_u32(&mut c, ret_len, len as u32).and_then(|()| write_u32(&mut c, ret_flags, 0));
    Ok(status_of(written))
}

/// The header map of `kind` for the current context. A map that does not exist yet is a bad
/// argument, except in the access-log phase where it is simply not found (Envoy).
fn header_map(state: &VmState, kind: i32) -> Result<&HeaderPairs, Status> {
    if let map_type::HTTP_CALL_RESPONSE_HEADERS | map_type::HTTP_CALL_RESPONSE_TRAILERS = kind {
        let response = state.call_response.as_ref().ok_or(Status::BadArgument)?;
        return Ok(if kind == map_type::HTTP_CALL_RESPONSE_HEADERS {
            &response.headers
        } else {
            &response.trailers
        });
    }
    let stream = state.current_stream().ok_or(Status::BadArgument)?;
    let map = match kind {
        map_type::HTTP_REQUEST_HEADERS => Some(&stream.request_headers),
        map_type::HTTP_REQUEST_TRAILERS => stream.request_trailers.as_ref(),
        map_type::HTTP_RESPONSE_HEADERS => stream.response_headers.as_ref(),
        map_type::HTTP_RESPONSE_TRAILERS => stream.response_trailers.as_ref(),
        _ => return Err(Status::BadArgument),
    };
    map.ok_or(if stream.phase == Some(Phase::Log) {
        Status::NotFound
    } else {
        Status::BadArgument
    })
}

fn header_map_mut(state: &mut VmState, kind: i32) -> Result<&mut HeaderPairs, Status> {
    let stream = state.current_stream_mut().ok_or(Status::BadArgument)?;
    let map = match kind {
        map_type::HTTP_REQUEST_HEADERS => Some(&mut stream.request_headers),
        map_type::HTTP_REQUEST_TRAILERS => stream.request_trailers.as_mut(),
        map_type::HTTP_RESPONSE_HEADERS => stream.response_headers.as_mut(),
        map_type::HTTP_RESPONSE_TRAILERS => stream.response_trailers.as_mut(),
        _ => None,
    };
    map.ok_or(Status::BadArgument)
}

fn proxy_get_header_map_pairs(
    mut c: Caller<'_, VmState>,
    kind: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let bytes = match header_map(c.data(), kind) {
        Ok(map) => super::abi::encode_map(map),
        Err(Status::NotFound) => Vec::new(),
        Err(status) => return Ok(status.code()),
    };
    copy_out(&mut c, &bytes, ret_ptr, ret_len)
}

fn proxy_get_header_map_size(mut c: Caller<'_, VmState>, kind: i32, ret_len: i32) -> HostResult {
    c.data_mut().host_calls += 1;
    let size = match header_map(c.data(), kind) {
        Ok(map) => map.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
        Err(status) => return Ok(status.code()),
    };
    Ok(status_of(write_u32(&mut c, ret_len, size as u32)))
}

fn proxy_set_header_map_pairs(
    mut c: Caller<'_, VmState>,
    kind: i32,
    ptr: i32,
    len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let bytes = match read(&mut c, ptr, len) {
        Ok(b) => b,
        Err(status) => return Ok(status.code()),
    };
    let Some(pairs) = super::abi::decode_map(&bytes) else {
        return Ok(Status::ParseFailure.code());
    };
    let result = header_map_mut(c.data_mut(), kind).map(|map| {
        *map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    });
    Ok(status_of(result))
}

fn proxy_get_header_map_value(
    mut c: Caller<'_, VmState>,
    kind: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let key = match read_string(&mut c, key_ptr, key_len) {
        Ok(k) => k.to_ascii_lowercase(),
        Err(status) => return Ok(status.code()),
    };
    // Envoy joins repeated headers with ','.
    let value = match header_map(c.data(), kind) {
        Ok(map) => {
            let values: Vec<&[u8]> = map
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.as_slice())
                .collect();
            if values.is_empty() {
                return Ok(Status::NotFound.code());
            }
            values.join(&b","[..])
        }
        Err(status) => return Ok(status.code()),
    };
    copy_out(&mut c, &value, ret_ptr, ret_len)
}

enum HeaderEdit {
    Add,
    Replace,
    Remove,
}

fn mutate_header(
    mut c: Caller<'_, VmState>,
    kind: i32,
    key_ptr: i32,
    key_len: i32,
    value: Option<(i32, i32)>,
    edit: HeaderEdit,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let key = match read_string(&mut c, key_ptr, key_len) {
        Ok(k) => k.to_ascii_lowercase(),
        Err(status) => return Ok(status.code()),
    };
    let value = match value.map(|(p, l)| read(&mut c, p, l)).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(status) => return Ok(status.code()),
    };
    let result = header_map_mut(c.data_mut(), kind).map(|map| match edit {
        HeaderEdit::Add => map.push((key, value)),
        HeaderEdit::Replace => {
            map.retain(|(k, _)| *k != key);
            map.push((key, value));
        }
        HeaderEdit::Remove => map.retain(|(k, _)| *k != key),
    });
    Ok(status_of(result))
}

fn proxy_get_property(
    mut c: Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let key = match read_string(&mut c, ptr, len) {
        Ok(k) => k,
        Err(status) => return Ok(status.code()),
    };
    let Some(value) = c.data().property(&key) else {
        return Ok(Status::NotFound.code());
    };
    copy_out(&mut c, &value, ret_ptr, ret_len)
}

fn proxy_set_property(
    mut c: Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    vptr: i32,
    vlen: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let (key, value) =
        match read_string(&mut c, ptr, len).and_then(|k| Ok((k, read(&mut c, vptr, vlen)?))) {
            Ok(kv) => kv,
            Err(status) => return Ok(status.code()),
        };
    // Envoy stores filter-set properties in the stream's (or connection's) filter state.
    let state = c.data_mut();
    let context = state.current_context;
    if let Some(stream) = state.streams.get_mut(&context) {
        let phase = stream.phase.unwrap_or(Phase::Request);
        stream.properties.set_raw(&key, value, phase);
    } else if let Some(connection) = state.connections.get_mut(&context) {
        connection.properties.set_raw(&key, value, connection.phase);
    } else {
        return Ok(Status::NotFound.code());
    }
    Ok(Status::Ok.code())
}
