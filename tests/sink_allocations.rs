//! Handing a line to the output allocates nothing in steady state, in any
//! write mode (allocations counted on the logging thread only).
//!
//! The sink is crate-private; this binary compiles its source files as its own
//! modules so that the counting allocator stays out of every other test.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::pedantic)]

// The sink's files expect `crate::diagnostics`, `crate::format::time` and
// their siblings through `super::`: all of them sit at this crate's root.
#[path = "../src/diagnostics.rs"]
mod diagnostics;
#[path = "../src/sink/drop_report.rs"]
mod drop_report;
#[path = "../src/sink/line_sink.rs"]
mod line_sink;
#[path = "../src/sink/target.rs"]
mod target;
#[path = "../src/format/time.rs"]
mod time;

mod format {
    pub(crate) use super::time;
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drop_report::DropReport;
use line_sink::{LineSink, WriteMode};
use target::Target;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts calls, in
// const-initialised thread-locals that never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// Counts bytes and lines, keeps nothing (so the target itself allocates
/// nothing either).
#[derive(Clone, Default)]
struct Counter {
    bytes: Arc<AtomicUsize>,
    lines: Arc<AtomicUsize>,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.fetch_add(buf.len(), Ordering::Relaxed);
        let lines = buf.iter().filter(|&&b| b == b'\n').count();
        self.lines.fetch_add(lines, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_line_allocates_nothing_in_steady_state() {
    let line = br#"{"timestamp":"2026-12-03T10:00:00.000000Z","level":"INFO","target":"app","message":"steady state","i":1}
"#;
    for mode in [WriteMode::Block, WriteMode::Drop, WriteMode::Direct] {
        let counter = Counter::default();
        // Room for every line: Drop mode drops nothing here.
        let sink = LineSink::new(
            Target::writer(counter.clone()),
            mode,
            1 << 20,
            DropReport::Json,
        );
        for _ in 0..1000 {
            sink.write_line(line);
        }
        assert!(sink.flush(Duration::from_secs(10)));
        let allocations = allocations_during(|| {
            for _ in 0..5000 {
                sink.write_line(line);
            }
        });
        assert_eq!(allocations, 0, "{mode:?}");
        let report = sink.shutdown(Duration::from_secs(10));
        assert_eq!(report.written, 6000, "{mode:?}");
        assert_eq!(counter.lines.load(Ordering::Relaxed), 6000, "{mode:?}");
    }
}

#[test]
fn a_blocked_producer_allocates_nothing_either() {
    // A small buffer: the producer waits for room again and again.
    let line = [b'x'; 99]
        .iter()
        .copied()
        .chain([b'\n'])
        .collect::<Vec<u8>>();
    let counter = Counter::default();
    let sink = LineSink::new(
        Target::writer(counter.clone()),
        WriteMode::Block,
        1000,
        DropReport::Json,
    );
    for _ in 0..100 {
        sink.write_line(&line);
    }
    assert!(sink.flush(Duration::from_secs(10)));
    let allocations = allocations_during(|| {
        for _ in 0..5000 {
            sink.write_line(&line);
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(sink.shutdown(Duration::from_secs(10)).written, 5100);
}
