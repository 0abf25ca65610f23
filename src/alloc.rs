//! labtui's global allocator: mimalloc with the live heap counted, its freed pages kept for
//! reuse, and an optional cap on any one allocation. `main` (and the fuzz tests) install it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// labtui's allocator, declared `#[global_allocator]` by the binary (and by the fuzz tests):
/// mimalloc, which reuses freed memory instead of returning large blocks to the kernel (which
/// otherwise zeroes fresh pages for the logits of every decode step), with the live bytes counted
/// so that the heap can be told from RSS (RSS also holds mapped weights, stacks and memory the
/// allocator keeps for reuse), and an optional bound on any one allocation (the fuzz tests set it,
/// so that a size read from a file that escaped its check aborts instead of exhausting the
/// machine). Where another allocator is in place (the other test binaries), [`heap_live`] is 0.
pub struct Heap;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static MAX_ONE: AtomicUsize = AtomicUsize::new(usize::MAX);

// SAFETY: every call forwards to mimalloc with the caller's layout; the counters are only
// arithmetic beside it, and an oversized request returns null as an allocator may.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let p = mimalloc::MiMalloc.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let p = mimalloc::MiMalloc.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        mimalloc::MiMalloc.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let q = mimalloc::MiMalloc.realloc(p, l, new_size);
        if !q.is_null() {
            grew(new_size);
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        }
        q
    }
}

/// `bytes` more are live: the peak follows.
#[inline]
fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// The most bytes live through [`Heap`] at once since the last [`reset_heap_peak`] (0 where
/// another allocator is in place).
pub fn heap_peak() -> u64 {
    PEAK.load(Ordering::Relaxed) as u64
}

/// Start the peak over from what is live now: what one measurement allocates is then
/// `heap_peak() - heap_live()` read before it.
pub fn reset_heap_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Bytes allocated through [`Heap`] and not yet freed, now.
pub fn heap_live() -> u64 {
    LIVE.load(Ordering::Relaxed) as u64
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep the pages of freed memory for reuse instead of handing them back to the kernel 10 ms
/// after the free (mimalloc's default). A prefill allocates and frees buffers of megabytes in
/// every layer (scores, masks, activations); handed back, each came back as fresh pages the
/// kernel zeroes: 16% of a Gemma 3 prefill's time went to that. Kept, prefill ran 20–25% faster
/// here (0.5B and Gemma 3, pp128 and pp512). The memory kept is what the largest step used; it
/// is reused, not grown (the soak's RSS net of the KV cache says so).
pub fn keep_freed_pages() {
    // SAFETY: sets one of mimalloc's options, which it reads on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Refuse any single allocation over `bytes` from now on (the standard library then aborts
/// naming the size). For tests that feed hostile input.
pub fn limit_each_allocation(bytes: usize) {
    MAX_ONE.store(bytes, Ordering::Relaxed);
}
