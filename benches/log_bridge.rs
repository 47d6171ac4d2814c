//! A `log::info!` forwarded by the LogBridge against the same
//! `tracing::info!`, inside 3 entered spans, formatted as JSON to a sink (so
//! formatting is measured, not I/O), with the setup `init_json_logging` makes
//! (an `info` filter, the correlation layer, the JSON format).
//!
//! `cargo bench --bench log_bridge -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{criterion_group, criterion_main, Criterion};

fn forwarded_vs_native(c: &mut Criterion) {
    let _guard = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter("info")
        .panic_hook(false)
        .propagators(false)
        .try_init()
        .expect("the bench's only init");

    let a = tracing::info_span!("request", method = "GET", path = "/orders");
    let _a = a.enter();
    let b = tracing::info_span!("handler", name = "orders");
    let _b = b.enter();
    let c3 = tracing::info_span!("db", table = "orders");
    let _c = c3.enter();

    let mut group = c.benchmark_group("in_3_spans");
    group.bench_function("tracing_info", |bench| {
        bench.iter(|| tracing::info!(user_id = 7, cached = true, "request handled in {} ms", 42));
    });
    group.bench_function("log_info_forwarded", |bench| {
        bench.iter(|| log::info!(user_id = 7, cached = true; "request handled in {} ms", 42));
    });
    group.bench_function("log_debug_disabled", |bench| {
        bench.iter(|| log::debug!(user_id = 7; "filtered out {}", 42));
    });
    group.finish();
}

criterion_group!(benches, forwarded_vs_native);
criterion_main!(benches);
