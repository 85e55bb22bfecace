//! The VM's global allocator (wasm32 only): small blocks come from per-size-class free lists,
//! everything else from the system allocator (wasi-libc's dlmalloc).
//!
//! Every request makes a dozen short-lived small allocations — mostly the buffers the host
//! returns property values in, through `proxy_on_memory_allocate` — and dlmalloc's general
//! bookkeeping cost more wasm instructions than the filter's own work. A freed small block is
//! kept on its class's list and handed out again; classes are powers of two from 16 to 1024
//! bytes, so a list holds at most the peak number of live blocks of its class. It must not be
//! used where threads exist: a proxy-wasm VM is single-threaded, which is what makes the
//! unsynchronized lists sound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

const SMALLEST: usize = 16;
const LARGEST: usize = 1024;
const CLASSES: usize = (LARGEST / SMALLEST).trailing_zeros() as usize + 1;

/// Free-list allocator for small blocks over [`System`].
pub(crate) struct PooledAlloc {
    /// Head of each class's list of free blocks; a free block's first word links the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: proxy-wasm VMs run one thread; nothing else can reach the lists concurrently.
unsafe impl Sync for PooledAlloc {}

impl PooledAlloc {
    pub(crate) const fn new() -> Self {
        PooledAlloc {
            free: UnsafeCell::new([null_mut(); CLASSES]),
        }
    }
}

impl Default for PooledAlloc {
    fn default() -> Self {
        PooledAlloc::new()
    }
}

/// The size class of a layout, `None` when it is served by the system allocator.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > SMALLEST {
        return None;
    }
    let block = layout.size().max(SMALLEST).next_power_of_two();
    Some((block / SMALLEST).trailing_zeros() as usize)
}

fn class_layout(class: usize) -> Layout {
    // SAFETY: a power of two of at most LARGEST bytes with a power-of-two alignment.
    unsafe { Layout::from_size_align_unchecked(SMALLEST << class, SMALLEST) }
}

unsafe impl GlobalAlloc for PooledAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return System.alloc(layout);
        };
        let lists = &mut *self.free.get();
        let head = lists[class];
        if head.is_null() {
            return System.alloc(class_layout(class));
        }
        lists[class] = *(head as *mut *mut u8);
        head
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            return System.dealloc(ptr, layout);
        };
        let lists = &mut *self.free.get();
        *(ptr as *mut *mut u8) = lists[class];
        lists[class] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (class_of(layout), class_of(new_layout)) {
            (None, None) => System.realloc(ptr, layout, new_size),
            (Some(old), Some(new)) if old == new => ptr,
            _ => {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                moved
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: PooledAlloc = PooledAlloc::new();
