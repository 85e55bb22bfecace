//! Memory held per scraped series, counted: a target's series cache after three scrapes of
//! the 15020-shaped body `cargo xtask bench scrape` serves (2,000 series: Istio's counter and
//! duration histogram with 25 labels per label set, then Envoy counters), with the bytes every
//! allocation occupies counted by this binary's global allocator. The figure is deterministic
//! (the same allocations for the same body), so it is a regression guard for the bench's RSS
//! per series, whose largest part it is.

#[path = "../benches/shared/sidecar_body.rs"]
mod sidecar_body;
#[path = "../benches/shared/sidecar_target.rs"]
mod sidecar_target;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use meshtap_sink::scrape::convert::body_to_samples;
use meshtap_sink::scrape::series_cache::SeriesCache;

/// Bytes of the live allocations, each counted as the region jemalloc (the sink binary's
/// allocator) gives it: its size class, which is what it occupies in the heap.
static HELD: AtomicUsize = AtomicUsize::new(0);

struct Counting;

/// jemalloc's size class of `layout` (x86_64, 4 KiB pages): 8 and 16, then four classes per
/// doubling (16 bytes apart up to 128: 32, 48, 64, 80, …; then 160, 192, 224, 256, 320, …);
/// from 16 KiB on, a page more for the random offset of large allocations.
fn chunk(layout: Layout) -> usize {
    let size = layout.size().max(1);
    if size <= 16 {
        return size.next_power_of_two().max(8);
    }
    let doubling = usize::BITS - 1 - (size - 1).leading_zeros();
    let spacing = (1usize << (doubling - 2)).max(16);
    let class = size.div_ceil(spacing) * spacing;
    if class >= 16 << 10 {
        class + 4096
    } else {
        class
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(chunk(layout), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(chunk(layout), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes the series cache may hold per series of the body.
const MAX_BYTES_PER_SERIES: usize = 108;

#[test]
fn size_classes_are_jemallocs() {
    let class = |size| chunk(Layout::from_size_align(size, 8).unwrap());
    let classes: Vec<usize> = [1, 8, 9, 17, 33, 48, 49, 112, 129, 200, 257, 640, 16384]
        .into_iter()
        .map(class)
        .collect();
    assert_eq!(
        classes,
        [8, 8, 16, 32, 48, 48, 64, 112, 160, 224, 320, 640, 20480]
    );
}

#[test]
fn the_series_cache_holds_at_most_its_bound_per_series() {
    let body = sidecar_body::sidecar_body(0, 2000).into_bytes();
    let target = sidecar_target::sidecar_target();
    let before = HELD.load(Ordering::Relaxed);
    let mut cache = SeriesCache::default();
    for scrape in 1..=3 {
        let samples = body_to_samples(&body, None, &target, scrape, false, &mut cache).samples;
        assert_eq!(samples.len(), 2000);
        drop(samples);
        assert!(cache.finish(scrape).is_empty());
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    let per_series = held / cache.len();
    println!(
        "series cache: {held} bytes for {} series, {per_series} bytes per series",
        cache.len()
    );
    assert!(
        per_series <= MAX_BYTES_PER_SERIES,
        "{per_series} bytes per series (at most {MAX_BYTES_PER_SERIES})"
    );
}
