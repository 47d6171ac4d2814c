//! Cost of carrying the context: a context-carrying tokio spawn (and std
//! thread spawn) against the bare one, inside a span of a stand-alone
//! correlation subscriber that formats JSON into a sink, each task logging
//! one line; then the ratio for empty tasks, printed at the end.
#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, Criterion};
use tracing::instrument::WithSubscriber as _;
use tracing_correlation::context::{thread as ctx_thread, tokio as ctx_tokio};
use tracing_correlation::{CorrelationLayer, JsonFormat};
use tracing_subscriber::layer::SubscriberExt;

fn subscriber() -> tracing::Dispatch {
    tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(CorrelationLayer::new())
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::new())
                    .with_writer(std::io::sink),
            ),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

const BATCH: usize = 100;

fn spawn(c: &mut Criterion) {
    let rt = runtime();
    let dispatch = subscriber();
    // Bare tasks need a subscriber of their own to log to; as a global
    // default would be, it is set on every worker through the future.
    let mut group = c.benchmark_group("tokio_spawn_x100");
    group.bench_function("bare", |b| {
        b.iter(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request").entered();
                rt.block_on(async {
                    let handles: Vec<_> = (0..BATCH)
                        .map(|i| {
                            tokio::spawn(
                                async move { tracing::info!(i, "task") }
                                    .with_subscriber(dispatch.clone()),
                            )
                        })
                        .collect();
                    for h in handles {
                        black_box(h.await.ok());
                    }
                });
            });
        });
    });
    group.bench_function("in_context", |b| {
        b.iter(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request").entered();
                let handles: Vec<_> = {
                    let _rt = rt.enter();
                    (0..BATCH)
                        .map(|i| ctx_tokio::spawn(async move { tracing::info!(i, "task") }))
                        .collect()
                };
                rt.block_on(async {
                    for h in handles {
                        black_box(h.await.ok());
                    }
                });
            });
        });
    });
    group.finish();

    let mut group = c.benchmark_group("std_thread_spawn");
    group.bench_function("bare", |b| {
        b.iter(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request").entered();
                let d = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&d, || tracing::info!("thread"));
                })
                .join()
                .ok()
            })
        });
    });
    group.bench_function("in_context", |b| {
        b.iter(|| {
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request").entered();
                ctx_thread::spawn(|| tracing::info!("thread")).join().ok()
            })
        });
    });
    group.finish();
}

/// The ratio, measured directly (criterion's own numbers are above).
fn ratios(_: &mut Criterion) {
    let rt = runtime();
    let dispatch = subscriber();
    let measure = |carry: bool| {
        let start = Instant::now();
        let mut rounds = 0u32;
        while start.elapsed() < Duration::from_secs(1) {
            tracing::dispatcher::with_default(&dispatch, || {
                let _span = tracing::info_span!("request").entered();
                let _rt = rt.enter();
                let handles: Vec<_> = (0..BATCH)
                    .map(|i| {
                        if carry {
                            ctx_tokio::spawn(async move { black_box(i) })
                        } else {
                            tokio::spawn(async move { black_box(i) })
                        }
                    })
                    .collect();
                rt.block_on(async {
                    for h in handles {
                        black_box(h.await.ok());
                    }
                });
            });
            rounds += 1;
        }
        start.elapsed() / (rounds * BATCH as u32)
    };
    let bare = measure(false);
    let carried = measure(true);
    eprintln!(
        "empty task, tokio spawn+join: bare {bare:?}, in_context {carried:?}, ratio {:.2}",
        carried.as_secs_f64() / bare.as_secs_f64()
    );
}

criterion_group!(benches, spawn, ratios);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
