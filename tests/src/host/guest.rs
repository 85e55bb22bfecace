//! Access to a VM's linear memory from inside a host function: reading arguments, writing
//! results, and handing buffers to the guest through its own allocator
//! (`proxy_on_memory_allocate` on wasip1, `malloc` on wasm32-unknown-unknown).
//!
//! Only memory plumbing lives here; what the bytes mean is the import's business.

use wasmtime::{Caller, Extern, Memory};

use super::abi::Status;
use super::vm_state::VmState;

/// Host functions return their `proxy_status_t` as i32, or a trap.
pub type HostResult = wasmtime::Result<i32>;

/// Converts a store outcome into the status code a host function returns.
pub fn status_of(result: Result<(), Status>) -> i32 {
    match result {
        Ok(()) => Status::Ok.code(),
        Err(status) => status.code(),
    }
}

fn memory(caller: &mut Caller<'_, VmState>) -> Result<Memory, Status> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub fn read(caller: &mut Caller<'_, VmState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let memory = memory(caller)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    memory
        .data(&*caller)
        .get(start..start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string argument; invalid UTF-8 is a bad argument.
pub fn read_string(caller: &mut Caller<'_, VmState>, ptr: i32, len: i32) -> Result<String, Status> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes raw bytes at `ptr`.
pub fn write(caller: &mut Caller<'_, VmState>, ptr: i32, bytes: &[u8]) -> Result<(), Status> {
    let memory = memory(caller)?;
    let start = ptr as u32 as usize;
    memory
        .data_mut(&mut *caller)
        .get_mut(start..start + bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

pub fn write_u32(caller: &mut Caller<'_, VmState>, ptr: i32, value: u32) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

pub fn write_u64(caller: &mut Caller<'_, VmState>, ptr: i32, value: u64) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates `len` bytes in the guest through its exported allocator.
pub fn allocate(caller: &mut Caller<'_, VmState>, len: usize) -> wasmtime::Result<i32> {
    let allocator = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|name| caller.get_export(name).and_then(Extern::into_func))
        .ok_or_else(|| {
            wasmtime::Error::msg("module exports neither proxy_on_memory_allocate nor malloc")
        })?;
    let allocator = allocator.typed::<i32, i32>(&*caller)?;
    allocator.call(&mut *caller, len as i32)
}

/// Hands `bytes` to the guest: allocates a guest buffer, copies, and writes its pointer and
/// length to `ptr_ptr` / `len_ptr`. An empty value writes a null pointer and zero length
/// without allocating, as proxy-wasm-cpp-host does. A trap inside the allocator propagates.
pub fn copy_out(
    caller: &mut Caller<'_, VmState>,
    bytes: &[u8],
    ptr_ptr: i32,
    len_ptr: i32,
) -> HostResult {
    let ptr = if bytes.is_empty() {
        0
    } else {
        let ptr = allocate(caller, bytes.len())?;
        if ptr == 0 {
            return Ok(Status::InvalidMemoryAccess.code());
        }
        if let Err(status) = write(caller, ptr, bytes) {
            return Ok(status.code());
        }
        ptr
    };
    let written = write_u32(caller, ptr_ptr, ptr as u32)
        .and_then(|()| write_u32(caller, len_ptr, bytes.len() as u32));
    Ok(status_of(written))
}
