//! The per-event cost of baggage fields and of the line's options (profiles,
//! static fields, parent span ids, source locations): no heap allocation per
//! event (measured on this thread only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use tracing::Dispatch;
use tracing_correlation::opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_correlation::{CorrelationLayer, JsonFormat, Profile};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

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

fn subscriber(format: JsonFormat, otel: bool) -> (Dispatch, Option<SdkTracerProvider>) {
    macro_rules! fmt {
        () => {
            tracing_subscriber::fmt::layer()
                .event_format(format)
                .with_writer(std::io::sink)
        };
    }
    if otel {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_correlation::tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(filter_fn(|meta: &tracing::Metadata<'_>| meta.is_span()));
        let subscriber = tracing_subscriber::registry()
            .with(layer)
            .with(CorrelationLayer::with_opentelemetry())
            .with(fmt!());
        (Dispatch::new(subscriber), Some(provider))
    } else {
        let subscriber = tracing_subscriber::registry()
            .with(CorrelationLayer::new())
            .with(fmt!());
        (Dispatch::new(subscriber), None)
    }
}

#[test]
fn events_allocate_nothing_with_or_without_a_baggage_allowlist() {
    let baggage = Context::new().with_baggage([
        KeyValue::new("tenant", "acme"),
        KeyValue::new("user_id", "42"),
        KeyValue::new("secret", "s3cr3t"),
    ]);
    for otel in [false, true] {
        for format in [
            JsonFormat::new(),
            JsonFormat::new().with_baggage_fields(["tenant", "user_id", "absent"]),
        ] {
            let (dispatch, _provider) = subscriber(format, otel);
            tracing::dispatcher::with_default(&dispatch, || {
                let _attached = baggage.clone().attach();
                let span = tracing::info_span!("request", method = "GET");
                let _entered = span.enter();
                for i in 0..100 {
                    tracing::info!(i, user = "ada", "steady state");
                }
                let allocations = allocations_during(|| {
                    for i in 0..100 {
                        tracing::info!(i, user = "ada", "steady state");
                    }
                });
                let per_event: Vec<usize> = (0..5)
                    .map(|i| allocations_during(|| tracing::info!(i, user = "ada", "steady state")))
                    .collect();
                assert_eq!(allocations, 0, "otel: {otel} {per_event:?}");
            });
        }
    }
}

#[test]
fn profiles_static_fields_parent_ids_and_locations_allocate_nothing_per_event() {
    for profile in [
        Profile::opentelemetry(),
        Profile::ecs(),
        Profile::google_cloud("my-project"),
        Profile::datadog(),
    ] {
        let format = JsonFormat::new()
            .with_profile(profile)
            .with_static_fields([("service.name", "checkout"), ("service.version", "1.4.2")])
            .with_parent_span_id(true)
            .with_source_location(true);
        let (dispatch, _provider) = subscriber(format, false);
        tracing::dispatcher::with_default(&dispatch, || {
            let outer = tracing::info_span!("request", method = "GET");
            let _outer = outer.enter();
            let inner = tracing::info_span!("db");
            let _inner = inner.enter();
            for i in 0..100 {
                tracing::warn!(i, user = "ada", "steady state");
            }
            let allocations = allocations_during(|| {
                for i in 0..100 {
                    tracing::warn!(i, user = "ada", "steady state");
                }
            });
            assert_eq!(allocations, 0);
        });
    }
}
