//! `env.proxy_*` imports for shared data, shared queues and metrics: argument plumbing over
//! [`super::shared::ProxyShared`], which holds Envoy's semantics.
//!
//! Must not keep state of its own.

use wasmtime::{Caller, Linker};

use super::abi::{MetricType, Status};
use super::guest::{copy_out, read, read_string, status_of, write_u32, write_u64, HostResult};
use super::vm_state::VmState;

/// Adds this module's imports to the linker.
pub fn define(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_get_shared_data", proxy_get_shared_data)?;
    linker.func_wrap("env", "proxy_set_shared_data", proxy_set_shared_data)?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Caller<'_, VmState>, ptr: i32, len: i32, ret: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            let name = match read_string(&mut c, ptr, len) {
                Ok(n) => n,
                Err(status) => return Ok(status.code()),
            };
            let state = c.data();
            let root = state.root_id_of(state.current_context).unwrap_or_default();
            let id = state.shared.register_queue(&name, state.worker, root);
            Ok(status_of(write_u32(&mut c, ret, id)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, VmState>, vp: i32, vl: i32, np: i32, nl: i32, ret: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            let names =
                read_string(&mut c, vp, vl).and_then(|vm| Ok((vm, read_string(&mut c, np, nl)?)));
            let (vm_id, name) = match names {
                Ok(n) => n,
                Err(status) => return Ok(status.code()),
            };
            match c.data().shared.resolve_queue(&vm_id, &name) {
                Ok(id) => Ok(status_of(write_u32(&mut c, ret, id))),
                Err(status) => Ok(status.code()),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Caller<'_, VmState>, id: i32, ptr: i32, len: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            let value = match read(&mut c, ptr, len) {
                Ok(v) => v,
                Err(status) => return Ok(status.code()),
            };
            Ok(status_of(c.data().shared.enqueue(id as u32, &value)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, VmState>, id: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            match c.data().shared.dequeue(id as u32) {
                Ok(value) => copy_out(&mut c, &value, ret_ptr, ret_len),
                Err(status) => Ok(status.code()),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, VmState>, kind: i32, ptr: i32, len: i32, ret: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            let Some(kind) = MetricType::from_abi(kind) else {
                return Ok(Status::BadArgument.code());
            };
            let name = match read_string(&mut c, ptr, len) {
                Ok(n) => n,
                Err(status) => return Ok(status.code()),
            };
            let id = c.data().shared.define_metric(kind, &name);
            Ok(status_of(write_u32(&mut c, ret, id)))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: Caller<'_, VmState>, id: i32, delta: i64| -> HostResult {
            c.data_mut().host_calls += 1;
            Ok(status_of(
                c.data().shared.increment_metric(id as u32, delta),
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |mut c: Caller<'_, VmState>, id: i32, value: i64| -> HostResult {
            c.data_mut().host_calls += 1;
            Ok(status_of(
                c.data().shared.record_metric(id as u32, value as u64),
            ))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Caller<'_, VmState>, id: i32, ret: i32| -> HostResult {
            c.data_mut().host_calls += 1;
            match c.data().shared.get_metric(id as u32) {
                Ok(value) => Ok(status_of(write_u64(&mut c, ret, value))),
                Err(status) => Ok(status.code()),
            }
        },
    )?;
    Ok(())
}

fn proxy_get_shared_data(
    mut c: Caller<'_, VmState>,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
    ret_cas: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let key = match read_string(&mut c, key_ptr, key_len) {
        Ok(k) => k,
        Err(status) => return Ok(status.code()),
    };
    let (value, cas) = match c.data().shared.get_shared_data(&key) {
        Ok(entry) => entry,
        Err(status) => return Ok(status.code()),
    };
    if let Err(status) = write_u32(&mut c, ret_cas, cas) {
        return Ok(status.code());
    }
    copy_out(&mut c, &value, ret_ptr, ret_len)
}

fn proxy_set_shared_data(
    mut c: Caller<'_, VmState>,
    key_ptr: i32,
    key_len: i32,
    val_ptr: i32,
    val_len: i32,
    cas: i32,
) -> HostResult {
    c.data_mut().host_calls += 1;
    let entry = read_string(&mut c, key_ptr, key_len)
        .and_then(|k| Ok((k, read(&mut c, val_ptr, val_len)?)));
    let (key, value) = match entry {
        Ok(kv) => kv,
        Err(status) => return Ok(status.code()),
    };
    Ok(status_of(
        c.data().shared.set_shared_data(&key, &value, cas as u32),
    ))
}
