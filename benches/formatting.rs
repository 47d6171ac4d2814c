//! Per-event and per-request cost against the plain `tracing-subscriber` JSON
//! formatter, all writing to a sink so formatting (not I/O) is measured.
//!
//! Run: `cargo bench --bench formatting -- --warm-up-time 1 --measurement-time 3`.
//! Besides criterion's times it prints heap allocations per event and, at
//! the end, each case's median time as a ratio to its group's reference.
//! Instruction counts, the stable figure on a shared machine, come from
//! `scripts/instructions.sh` (benches/instructions.rs).

// Criterion groups are undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use tracing::Dispatch;
use tracing_correlation::opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_correlation::CorrelationLayer;
use tracing_subscriber::layer::SubscriberExt;

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

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

/// The event every case logs: two fields and a message.
fn event() {
    tracing::info!(
        user_id = black_box(42),
        path = "/api/items",
        "request handled"
    );
}

/// 3 nested spans with 2 fields each, entered, around `op`.
fn in_three_spans(op: impl FnOnce()) {
    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
    let _a = a.enter();
    let b = tracing::info_span!("handler", user = black_box(7), admin = false);
    let _b = b.enter();
    let c = tracing::info_span!("db", table = "orders", shard = 3);
    let _c = c.enter();
    op();
}

/// One event inside three nested entered spans.
fn event_in_three_spans(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_in_3_spans");
    for (name, make) in stacks() {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            in_three_spans(|| {
                group.bench_function(name, |bench| bench.iter(event));
                // Steady-state allocations per event.
                for _ in 0..100 {
                    event();
                }
                let before = common::allocations();
                for _ in 0..1000 {
                    event();
                }
                let total = common::allocations() - before;
                println!("allocations per event [{name}]: {}", total / 1000);
            });
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
            group.bench_function(name, |bench| bench.iter(|| in_three_spans(event)));
        });
    }
    group.finish();
}

/// One child span with one field (create, enter, exit, close) inside an
/// entered parent: the bare registry, with the correlation layer, and the
/// whole stand-alone stack.
fn child_span(c: &mut Criterion) {
    let mut group = c.benchmark_group("span");
    let stacks: [Stack; 3] = [
        ("bare_registry", bare_registry),
        ("registry_with_correlation_layer", registry_with_layer),
        ("ours_standalone", ours_standalone),
    ];
    for (name, make) in stacks {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            let parent = tracing::info_span!("request", method = "GET");
            let _parent = parent.enter();
            group.bench_function(name, |bench| {
                bench.iter(|| {
                    let span = tracing::info_span!("child", n = black_box(1));
                    let _entered = span.enter();
                });
            });
        });
    }
    group.finish();
}

/// An event with 30 fields inside three spans.
fn wide_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("wide_event");
    for (name, make) in &stacks()[..2] {
        let dispatch = make();
        tracing::dispatcher::with_default(&dispatch, || {
            in_three_spans(|| {
                group.bench_function(*name, |bench| {
                    bench.iter(|| {
                        tracing::info!(
                            f00 = black_box(0),
                            f01 = 1,
                            f02 = "two",
                            f03 = true,
                            f04 = 4.5,
                            f05 = 5,
                            f06 = "six",
                            f07 = false,
                            f08 = 8,
                            f09 = "nine",
                            f10 = 10,
                            f11 = 11,
                            f12 = "twelve",
                            f13 = true,
                            f14 = 14,
                            f15 = 15,
                            f16 = "sixteen",
                            f17 = 17,
                            f18 = false,
                            f19 = 19,
                            f20 = 20,
                            f21 = "twenty-one",
                            f22 = 22,
                            f23 = true,
                            f24 = 24,
                            f25 = 25,
                            f26 = "twenty-six",
                            f27 = 27,
                            f28 = 28,
                            f29 = "twenty-nine",
                            "wide event"
                        );
                    });
                });
            });
        });
    }
    group.finish();
}

/// Where criterion keeps its estimates (as criterion itself decides).
fn criterion_home() -> std::path::PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|dir| std::path::PathBuf::from(dir).join("criterion"))
        })
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion")
        })
}

/// The median time of one benchmark of this run, in nanoseconds.
fn median_ns(group: &str, name: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(name)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// Each case's median time as a ratio to its group's reference (the first
/// case: `fmt().json()`, or the bare registry for spans).
fn print_ratios() {
    let groups: [(&str, &[&str]); 4] = [
        (
            "event_in_3_spans",
            &["fmt_json_plain", "ours_standalone", "ours_otel"],
        ),
        (
            "request",
            &["fmt_json_plain", "ours_standalone", "ours_otel"],
        ),
        (
            "span",
            &[
                "bare_registry",
                "registry_with_correlation_layer",
                "ours_standalone",
            ],
        ),
        ("wide_event", &["fmt_json_plain", "ours_standalone"]),
    ];
    println!("\nratios to each group's first case (median times of this run):");
    for (group, names) in groups {
        let Some(reference) = median_ns(group, names[0]) else {
            continue;
        };
        for name in &names[1..] {
            if let Some(time) = median_ns(group, name) {
                println!("  {group}/{name}: {:.3}x {}", time / reference, names[0]);
            }
        }
    }
}

criterion_group!(
    benches,
    event_in_three_spans,
    whole_request,
    child_span,
    wide_event
);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
