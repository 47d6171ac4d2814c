//! Every helper of `tracing_correlation::context`, each printing JSON lines
//! that carry the request's `trace_id` (run it and compare the ids):
//!
//! ```text
//! cargo run --example threads_and_tasks --features tokio,rayon
//! ```

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::KeyValue;
use rayon::prelude::*;
use tracing::Instrument as _;
use tracing_correlation::context::rayon::{self as ctx_rayon, ParallelIteratorExt as _};
use tracing_correlation::context::thread::{self as ctx_thread, BuilderExt as _};
use tracing_correlation::context::tokio::{self as ctx_tokio, JoinSetExt as _};
use tracing_correlation::context::{mpsc, tokio::mpsc as tokio_mpsc};
use tracing_correlation::{bind, new_root, opentelemetry, CapturedContext, FutureContextExt as _};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = tracing_correlation::init_json_logging()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let request = tracing::info_span!("request", id = 42);
    let _request = request.enter();
    // Baggage attached after the span was created travels too.
    let _baggage =
        opentelemetry::Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
    tracing::info!("request started");

    callbacks_and_threads()?;
    tokio_tasks(&runtime);
    rayon_jobs();
    channels(&runtime);
    background_job(&runtime);

    tracing::info!("request finished");
    Ok(())
}

fn callbacks_and_threads() -> std::io::Result<()> {
    // Callbacks: capture now, run later anywhere.
    let context = CapturedContext::capture();
    std::thread::spawn(move || context.run(|| tracing::info!(helper = "CapturedContext::run")))
        .join()
        .ok();
    std::thread::spawn(bind(|| tracing::info!(helper = "bind")))
        .join()
        .ok();
    let on_event =
        CapturedContext::capture().wrap_fn(|n: u32| tracing::info!(helper = "wrap_fn", n));
    std::thread::spawn(move || on_event(1)).join().ok();

    // std threads.
    ctx_thread::spawn(|| tracing::info!(helper = "thread::spawn"))
        .join()
        .ok();
    std::thread::Builder::new()
        .name("worker".into())
        .spawn_in_context(|| tracing::info!(helper = "BuilderExt::spawn_in_context"))?
        .join()
        .ok();
    ctx_thread::scope(|s| {
        s.spawn(|| tracing::info!(helper = "thread::scope"));
    });

    Ok(())
}

fn tokio_tasks(runtime: &tokio::runtime::Runtime) {
    {
        let _runtime = runtime.enter();
        let spawned = ctx_tokio::spawn(async {
            tokio::task::yield_now().await;
            tracing::info!(helper = "tokio::spawn", "after an .await");
        });
        let blocking =
            ctx_tokio::spawn_blocking(|| tracing::info!(helper = "tokio::spawn_blocking"));
        let mut set = tokio::task::JoinSet::new();
        set.spawn_in_context(async { tracing::info!(helper = "JoinSetExt::spawn_in_context") });
        let local = tokio::task::LocalSet::new();
        let local_task = {
            let _local = local.enter();
            ctx_tokio::spawn_local(async { tracing::info!(helper = "tokio::spawn_local") })
        };
        let future = async { tracing::info!(helper = "FutureContextExt::in_current_context") }
            .in_current_context();
        runtime.block_on(async {
            spawned.await.ok();
            blocking.await.ok();
            while set.join_next().await.is_some() {}
            local.run_until(local_task).await.ok();
            runtime.spawn(future).await.ok();
        });
    }
}

fn rayon_jobs() {
    ctx_rayon::join(
        || tracing::info!(helper = "rayon::join", side = "a"),
        || tracing::info!(helper = "rayon::join", side = "b"),
    );
    ctx_rayon::scope(|s| s.spawn(|_| tracing::info!(helper = "rayon::scope")));
    (0..3)
        .into_par_iter()
        .in_current_context()
        .for_each(|item| tracing::info!(helper = "par_iter", item));
}

fn channels(runtime: &tokio::runtime::Runtime) {
    // Channels: handle in the sender's context, or in a new linked span.
    let (tx, rx) = mpsc::channel();
    tx.send("resize").ok();
    tx.send("thumbnail").ok();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut messages = rx.into_iter();
        if let Some(message) = messages.next() {
            message.in_context(|job| tracing::info!(helper = "mpsc in_context", job));
        }
        if let Some(message) = messages.next() {
            let span = tracing::info_span!(parent: None, "consume");
            message.following(span, |job| {
                tracing::info!(helper = "mpsc following", job, "own trace, linked");
            });
        }
    });
    consumer.join().ok();
    let (tx, mut rx) = tokio_mpsc::channel(8);
    runtime.block_on(async {
        tx.send(7).await.ok();
        drop(tx);
        let consumer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let (job, context) = message.into_parts();
                async move { tracing::info!(helper = "tokio mpsc in_context", job) }
                    .in_context(context)
                    .await;
            }
        });
        consumer.await.ok();
    });
}

fn background_job(runtime: &tokio::runtime::Runtime) {
    // A new root: a background job in its own trace, linked to the request.
    let job = new_root(tracing::info_span!(parent: None, "nightly_job"))
        .link_to_ambient()
        .capture();
    runtime.block_on(
        async {
            // Spans are created where this code runs: inside the job's trace.
            // (`.instrument(info_span!(..))` written outside this block would
            // create the span in the request's trace.)
            async { tracing::info!(helper = "new_root", "own trace") }
                .instrument(tracing::info_span!("job_step"))
                .await;
        }
        .in_context(job),
    );
}
