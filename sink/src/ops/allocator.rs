//! The allocator's own accounting on `/metrics`: jemalloc's `stats.*` counters (what the
//! sink's allocations hold, what their pages hold, what jemalloc keeps for itself or has not
//! yet given back), read at every scrape of `/metrics`. Registered by the `meshtap-sink`
//! binary, whose global allocator jemalloc is; a process allocating elsewhere would show only
//! what went through jemalloc.
//!
//! Owns the allocator families' names and their reading; it must not tune the allocator.

use std::fmt::Write;

use tikv_jemalloc_ctl::{epoch, raw, stats};

use super::metrics::{header, MetricsSection};

/// `stats.arenas.<MALLCTL_ARENAS_ALL>.pdirty`: dirty pages of every arena together.
const ALL_ARENAS_DIRTY_PAGES: &[u8] = b"stats.arenas.4096.pdirty\0";
const PAGE_SIZE: &[u8] = b"arenas.page\0";

/// One family: name, help, and how its value is read (after the epoch was advanced).
type Family = (&'static str, &'static str, fn() -> Option<usize>);

const FAMILIES: [Family; 7] = [
    (
        "meshtap_sink_allocator_allocated_bytes",
        "Bytes the sink's live allocations hold (jemalloc stats.allocated).",
        || stats::allocated::read().ok(),
    ),
    (
        "meshtap_sink_allocator_active_bytes",
        "Bytes of the pages that hold live allocations (stats.active).",
        || stats::active::read().ok(),
    ),
    (
        "meshtap_sink_allocator_metadata_bytes",
        "Bytes jemalloc uses for its own bookkeeping (stats.metadata).",
        || stats::metadata::read().ok(),
    ),
    (
        "meshtap_sink_allocator_resident_bytes",
        "Bytes of the allocator's pages that are resident: active, metadata and dirty pages not yet returned (stats.resident).",
        || stats::resident::read().ok(),
    ),
    (
        "meshtap_sink_allocator_dirty_bytes",
        "Bytes of freed pages the allocator keeps resident until they decay (all arenas' pdirty).",
        dirty_bytes,
    ),
    (
        "meshtap_sink_allocator_mapped_bytes",
        "Bytes of the extents the allocator has mapped and uses (stats.mapped).",
        || stats::mapped::read().ok(),
    ),
    (
        "meshtap_sink_allocator_retained_bytes",
        "Bytes of virtual memory the allocator keeps mapped but not resident (stats.retained).",
        || stats::retained::read().ok(),
    ),
];

fn dirty_bytes() -> Option<usize> {
    // SAFETY: both names are jemalloc `size_t` controls, read as `usize` (the same type).
    let (pages, page) = unsafe {
        (
            raw::read::<usize>(ALL_ARENAS_DIRTY_PAGES).ok()?,
            raw::read::<usize>(PAGE_SIZE).ok()?,
        )
    };
    Some(pages * page)
}

/// The allocator's families (see the module docs).
#[derive(Debug, Default)]
pub struct AllocatorMetrics;

impl MetricsSection for AllocatorMetrics {
    fn render(&self, out: &mut String) {
        // The counters are a snapshot taken when the epoch advances.
        if epoch::advance().is_err() {
            return;
        }
        for (name, help, read) in FAMILIES {
            if let Some(value) = read() {
                header(out, name, "gauge", help);
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
}
