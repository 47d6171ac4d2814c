//! Correlated JSON logs with no collector: nested spans, an async section
//! with concurrent instrumented tasks, and a panic in a thread, every line
//! carrying the `trace_id` / `span_id` of the work it belongs to.
//!
//! Run: `cargo run --example quickstart`
//! (`LOG_FORMAT=pretty` for human-readable lines; set `OTEL_EXPORTER_OTLP_ENDPOINT`
//! and build with `--features otlp` to export the same spans to a collector.)

use std::time::Duration;

use tracing::{info, info_span, warn, Instrument};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One call: JSON lines on stdout, RUST_LOG filter (default `info`),
    // W3C propagators, and a panic hook that logs panics with their ids.
    let _guard = tracing_correlation::init_json_logging()?;

    info!("service starting (no span: no trace ids on this line)");

    let request = info_span!("request", method = "GET", path = "/orders/42");
    request.in_scope(|| {
        info!("request accepted");
        let lookup = info_span!("db_lookup", table = "orders");
        lookup.in_scope(|| info!(rows = 1, "order loaded"));
    });

    // Across `.await` points and between concurrent tasks, each task keeps
    // its own span and ids.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(
        async {
            info!("fanning out to two backends");
            let inventory = async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                info!(available = 3, "inventory answered");
            }
            .instrument(info_span!("inventory_call"));
            let pricing = async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                info!(price_cents = 1999, "pricing answered");
            }
            .instrument(info_span!("pricing_call"));
            tokio::join!(inventory, pricing);
            info!("both backends answered");
        }
        .instrument(request.clone()),
    );

    // A panic on a worker thread is logged as an ERROR line with the ids of
    // the span the thread was in.
    let job = info_span!(parent: &request, "report_job");
    let worker = std::thread::spawn(move || {
        let _entered = job.enter();
        info!("building report");
        panic!("report template missing");
    });
    if worker.join().is_err() {
        request.in_scope(|| warn!("report job failed; request continues"));
    }

    // A background job detached from the request: a new trace.
    info_span!(parent: None, "nightly_cleanup").in_scope(|| info!("cleanup ran in its own trace"));
    Ok(())
}
