//! A global allocator that counts live heap bytes, so the comparison can say
//! how much memory a store keeps per event (Rust heap only: SQLite's C
//! allocations are seen through the RSS instead).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator plus a counter of live bytes.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are `Counting`'s; the counter is only
// bookkeeping beside it and never influences what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// Live Rust heap bytes now.
pub fn live_heap() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64
}

/// The anonymous resident set size now (resident minus file-backed pages,
/// from `/proc/self/statm`; 0 where unavailable). File-backed pages are left
/// out because a memory-mapped log's pages are the OS page cache, not memory
/// the store keeps.
pub fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let field = |i: usize| -> i64 {
        statm
            .split_whitespace()
            .nth(i)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    (field(1) - field(2)) * 4096
}

/// Memory in use: Rust heap and RSS, to subtract one snapshot from another.
#[derive(Clone, Copy, Debug)]
pub struct Mem {
    /// Live Rust heap bytes.
    pub heap: i64,
    /// Resident set size in bytes.
    pub rss: i64,
}

impl Mem {
    /// A snapshot now.
    pub fn now() -> Mem {
        Mem {
            heap: live_heap(),
            rss: rss(),
        }
    }

    /// What grew since `earlier`.
    pub fn since(self, earlier: Mem) -> Mem {
        Mem {
            heap: self.heap - earlier.heap,
            rss: self.rss - earlier.rss,
        }
    }
}
