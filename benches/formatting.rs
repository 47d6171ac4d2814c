//! Per-event and per-request cost against the plain `tracing-subscriber` JSON
//! formatter, all writing to a sink so formatting (not I/O) is measured.
//!
//! Run: `cargo bench --bench formatting -- --warm-up-time 1 --measurement-time 3`.
//! Besides criterion's times it prints heap allocations per event.

// `criterion_main!` generates an undocumented `main`.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use tracing::Dispatch;
use tracing_correlation::opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_correlation::CorrelationLayer;
use tracing_subscriber::layer::SubscriberExt;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn plain_json() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::sink)
            .finish(),
    )
}

fn ours_standalone() -> Dispatch {
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter("info")
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

fn ours_otel() -> Dispatch {
    // A batch processor with an in-memory exporter: spans are recorded and
    // exported as in production, off the measured thread.
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(InMemorySpanExporter::default())
        .build();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter("info")
        .tracer_provider(provider)
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

fn bare_registry() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

fn registry_with_layer() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(CorrelationLayer::new()))
}

/// A named way to build a subscriber.
type Stack = (&'static str, fn() -> Dispatch);

fn stacks() -> [Stack; 3] {
    [
        ("fmt_json_plain", plain_json),
        ("ours_standalone", ours_standalone),
        ("ours_otel", ours_otel),
    ]
}

/// One `info!` with two fields inside three nested entered spans.
fn event_in_three_spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_in_3_spans");
    for (name, make) in stacks() {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
            let _a = a.enter();
            let b = tracing::info_span!("handler", user = 7);
            let _b = b.enter();
            let c = tracing::info_span!("db", table = "orders");
            let _c = c.enter();
            group.bench_function(name, |bench| {
                bench.iter(|| tracing::info!(rows = black_box(3), cached = false, "query done"));
            });
            // Steady-state allocations per event.
            for _ in 0..100 {
                tracing::info!(rows = 3, cached = false, "query done");
            }
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..1000 {
                tracing::info!(rows = black_box(3), cached = false, "query done");
            }
            let total = ALLOCATIONS.load(Ordering::Relaxed) - before;
            println!("allocations per event [{name}]: {}", total / 1000);
        });
    }
    group.finish();
}

/// A whole request: create and enter 3 nested spans, log 1 event, close all.
fn whole_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    for (name, make) in stacks() {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |bench| {
                bench.iter(|| {
                    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
                    let _a = a.enter();
                    let b = tracing::info_span!("handler", user = 7);
                    let _b = b.enter();
                    let c = tracing::info_span!("db", table = "orders");
                    let _c = c.enter();
                    tracing::info!(rows = black_box(3), cached = false, "query done");
                });
            });
        });
    }
    group.finish();
}

/// Per-span cost of the layer alone: 3 nested spans, no event.
fn spans_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("spans_only");
    let stacks: [Stack; 2] = [
        ("bare_registry", bare_registry),
        ("registry_with_correlation_layer", registry_with_layer),
    ];
    for (name, make) in stacks {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |bench| {
                bench.iter(|| {
                    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
                    let _a = a.enter();
                    let b = tracing::info_span!("handler", user = 7);
                    let _b = b.enter();
                    let c = tracing::info_span!("db", table = "orders");
                    let _c = c.enter();
                    black_box(&c);
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, event_in_three_spans, whole_request, spans_only);
criterion_main!(benches);
