//! The `wasi_snapshot_preview1` shims proxy-wasm-cpp-host provides: `fd_write` (stdout → info
//! log, stderr → error log), `environ_*` (the VM env), `args_*` (empty), `clock_time_get`,
//! `random_get` and `proc_exit` (a trap).
//!
//! Nothing else of WASI exists here: a module importing more is refused by the import check.

use rand::RngCore;
use wasmtime::{Caller, Linker};

use super::abi::LogLevel;
use super::guest::{read, write, write_u32, write_u64};
use super::imports_core::log_line;
use super::vm_state::VmState;

const WASI: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

fn errno<T>(result: Result<T, super::abi::Status>) -> i32 {
    if result.is_ok() {
        ERRNO_SUCCESS
    } else {
        ERRNO_FAULT
    }
}

/// Adds the WASI shims to the linker.
pub fn define(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    linker.func_wrap(WASI, "fd_write", fd_write)?;
    linker.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, VmState>, count_ptr: i32, size_ptr: i32| {
            c.data_mut().host_calls += 1;
            let env = &c.data().env;
            let count = env.len() as u32;
            let size: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            let result = write_u32(&mut c, count_ptr, count)
                .and_then(|()| write_u32(&mut c, size_ptr, size as u32));
            Ok::<i32, wasmtime::Error>(errno(result))
        },
    )?;
    linker.func_wrap(
        WASI,
        "environ_get",
        |mut c: Caller<'_, VmState>, ptrs_ptr: i32, buf_ptr: i32| {
            c.data_mut().host_calls += 1;
            let entries: Vec<Vec<u8>> = c
                .data()
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}\0").into_bytes())
                .collect();
            let mut offset = 0u32;
            for (i, entry) in entries.iter().enumerate() {
                let at = buf_ptr as u32 + offset;
                let result = write(&mut c, at as i32, entry)
                    .and_then(|()| write_u32(&mut c, ptrs_ptr + 4 * i as i32, at));
                if result.is_err() {
                    return Ok::<i32, wasmtime::Error>(ERRNO_FAULT);
                }
                offset += entry.len() as u32;
            }
            Ok(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Caller<'_, VmState>, count_ptr: i32, size_ptr: i32| {
            c.data_mut().host_calls += 1;
            let result =
                write_u32(&mut c, count_ptr, 0).and_then(|()| write_u32(&mut c, size_ptr, 0));
            Ok::<i32, wasmtime::Error>(errno(result))
        },
    )?;
    linker.func_wrap(
        WASI,
        "args_get",
        |mut c: Caller<'_, VmState>, _: i32, _: i32| {
            c.data_mut().host_calls += 1;
            Ok::<i32, wasmtime::Error>(ERRNO_SUCCESS)
        },
    )?;
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, VmState>, clock_id: i32, _precision: i64, ret: i32| {
            c.data_mut().host_calls += 1;
            // realtime (0) and monotonic (1) both read the host clock.
            if !(0..=3).contains(&clock_id) {
                return Ok::<i32, wasmtime::Error>(ERRNO_INVAL);
            }
            let now = c.data().clock.now_nanos();
            Ok(errno(write_u64(&mut c, ret, now)))
        },
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, VmState>, ptr: i32, len: i32| {
            c.data_mut().host_calls += 1;
            let mut bytes = vec![0u8; len as u32 as usize];
            c.data_mut().rng.fill_bytes(&mut bytes);
            Ok::<i32, wasmtime::Error>(errno(write(&mut c, ptr, &bytes)))
        },
    )?;
    linker.func_wrap(
        WASI,
        "proc_exit",
        |mut c: Caller<'_, VmState>, code: i32| {
            c.data_mut().host_calls += 1;
            Err::<(), wasmtime::Error>(wasmtime::Error::msg(format!(
                "guest called proc_exit({code})"
            )))
        },
    )?;
    Ok(())
}

fn fd_write(
    mut c: Caller<'_, VmState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    ret: i32,
) -> wasmtime::Result<i32> {
    c.data_mut().host_calls += 1;
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(ERRNO_BADF),
    };
    let mut text = Vec::new();
    for i in 0..iovs_len {
        let Ok(iov) = read(&mut c, iovs + 8 * i, 8) else {
            return Ok(ERRNO_FAULT);
        };
        let ptr = i32::from_le_bytes(iov[0..4].try_into().expect("4 bytes"));
        let len = i32::from_le_bytes(iov[4..8].try_into().expect("4 bytes"));
        match read(&mut c, ptr, len) {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => return Ok(ERRNO_FAULT),
        }
    }
    if write_u32(&mut c, ret, text.len() as u32).is_err() {
        return Ok(ERRNO_FAULT);
    }
    let worker = c.data().worker;
    for line in String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.is_empty())
    {
        log_line(c.data(), worker, level, line.to_string());
    }
    Ok(ERRNO_SUCCESS)
}
