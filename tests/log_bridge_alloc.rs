//! Forwarding a `log` record with key-values inside spans allocates nothing
//! once the per-thread buffers have grown. Installs a global allocator, a
//! global subscriber and the bridge: its own binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn a_forwarded_record_allocates_nothing_in_the_steady_state() {
    let _guard = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter("info")
        .panic_hook(false)
        .propagators(false)
        .try_init()
        .expect("first init");
    let _outer = tracing::info_span!("outer", user = "ada").entered();
    let _inner = tracing::info_span!("inner", n = 1).entered();
    let log_record =
        || log::info!(user_id = 7, name = "ada", ok = true, ratio = 0.5; "handled {}", 42);
    let tracing_event = || {
        tracing::info!(
            user_id = 7,
            name = "ada",
            ok = true,
            ratio = 0.5,
            "handled {}",
            42
        );
    };
    for _ in 0..3 {
        log_record();
        tracing_event();
    }
    assert_eq!(
        allocations_during(tracing_event),
        0,
        "baseline: a tracing event"
    );
    assert_eq!(allocations_during(log_record), 0, "a forwarded log record");
}
