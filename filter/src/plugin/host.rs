//! Thin, never-panicking wrappers over the proxy-wasm host calls the filter uses.
//!
//! Owns the typing of Envoy's property values (strings as raw bytes, ints as 8-byte
//! little-endian) and the mapping of Envoy's shared data onto [`SharedStore`]. Every host result
//! is matched, never unwrapped: an unexpected status means "absent". Statuses the SDK itself
//! treats as fatal are avoided by calling only functions whose documented statuses it handles.

use std::ptr::null_mut;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType, Status};

use crate::proxy::coordinate::{CasMismatch, SharedStore};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

/// `proxy_status_t` values read back from `proxy_get_property` (kept numeric: an unknown status
/// must not become an invalid enum value).
const STATUS_OK: u32 = Status::Ok as u32;

/// A property path already in wire form: its parts joined by NUL bytes.
#[derive(Clone, Copy)]
pub(crate) struct PropertyPath(pub &'static [u8]);

/// A property's raw bytes; `None` when absent (NotFound) or for any other status (never traps).
/// The path is passed as-is, so the only allocation is the host's returned buffer.
pub(crate) fn property(path: PropertyPath) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through this module's allocator
    // (`proxy_on_memory_allocate`, a `Vec<u8>` of exactly `size` bytes), which we take over.
    unsafe {
        match proxy_get_property(path.0.as_ptr(), path.0.len(), &mut data, &mut size) {
            STATUS_OK if !data.is_null() => Some(Vec::from_raw_parts(data, size, size)),
            STATUS_OK => Some(Vec::new()),
            _ => None,
        }
    }
}

/// A property at a dynamic path (configure time only: allocates the path).
pub(crate) fn property_at(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A string property at a dynamic path (configure time only).
pub(crate) fn string_property_at(path: &[&str]) -> Option<String> {
    property_at(path).map(into_string)
}

/// An int64/uint64 property (8-byte little-endian); `None` when absent or mistyped.
pub(crate) fn int_property(path: PropertyPath) -> Option<i64> {
    let bytes = property(path)?;
    let array: [u8; 8] = bytes.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(array))
}

/// A header value from one of the stream's maps; `None` when absent.
pub(crate) fn header(map: MapType, name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(map, name).ok().flatten()
}

/// Milliseconds since the epoch from the host clock (`proxy_get_current_time_nanoseconds`).
pub(crate) fn now_ms() -> i64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Logs through `proxy_log`.
pub(crate) fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Envoy's shared data for this vm_id, under a key prefix: the HTTP and the network plugin
/// instances of a proxy may share a VM (and its shared data) or not, so each coordinates under
/// its own prefix and reports on its own channel.
pub(crate) struct HostStore {
    pub key_prefix: &'static str,
}

impl HostStore {
    /// The HTTP plugin's keys (unprefixed).
    pub(crate) const HTTP: HostStore = HostStore { key_prefix: "" };
    /// The network plugin's keys.
    pub(crate) const NETWORK: HostStore = HostStore { key_prefix: "tcp/" };

    fn key<'a>(&self, key: &'a str) -> std::borrow::Cow<'a, str> {
        if self.key_prefix.is_empty() {
            key.into()
        } else {
            format!("{}{key}", self.key_prefix).into()
        }
    }
}

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(&self.key(key)) {
            Ok((Some(bytes), cas)) => Some((bytes, cas.unwrap_or(0))),
            // An existing key with an empty value (Envoy hands back no buffer).
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        let cas = (cas != 0).then_some(cas);
        hostcalls::set_shared_data(&self.key(key), Some(value), cas).map_err(|_| CasMismatch)
    }
}
