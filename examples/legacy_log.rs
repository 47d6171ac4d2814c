//! Legacy code that logs only through the `log` crate, called inside
//! `tracing` spans and from a spawned thread, gets the spans' trace ids.
//!
//! ```text
//! cargo run --example legacy_log                 # LogBridge: JSON lines via init_json_logging
//! cargo run --example legacy_log -- env_logger   # CorrelatedLogger around env_logger
//! ```
//!
//! Only one `log` logger can be installed per process, hence the two modes.

use tracing_correlation::{CorrelatedLogger, CorrelationLayer};
use tracing_subscriber::layer::SubscriberExt;

/// Stands for a dependency that knows nothing about `tracing`.
mod legacy {
    pub(crate) fn charge(order: u64, cents: u64) {
        log::info!(order = order, cents = cents; "charging card");
        if cents > 10_000 {
            log::warn!(target: "legacy::fraud", order = order; "large amount, flagged for review");
        }
    }

    pub(crate) fn sync_inventory(items: usize) {
        log::debug!(items = items; "syncing inventory");
        log::info!(items = items; "inventory synced");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        None | Some("bridge") => {
            // Installs the LogBridge too: `log` records become JSON lines.
            let _guard = tracing_correlation::init_json_logging()?;
            run();
            Ok(())
        }
        Some("env_logger") => {
            // `tracing` only keeps the ids here (no formatter); env_logger
            // writes the lines and the decorator adds the ids as key-values.
            tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(CorrelationLayer::new()),
            )?;
            let env_logger =
                env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                    .build();
            let max_level = env_logger.filter();
            CorrelatedLogger::new(env_logger).install(max_level)?;
            run();
            Ok(())
        }
        Some(other) => Err(format!("unknown mode {other:?}: use `bridge` or `env_logger`").into()),
    }
}

fn run() {
    let request = tracing::info_span!("checkout", user = "ada");
    request.in_scope(|| {
        legacy::charge(42, 12_500);
        // The spawned thread enters a handle to the request span, so its
        // records carry the request's trace id.
        let span = tracing::Span::current();
        let worker = std::thread::spawn(move || span.in_scope(|| legacy::sync_inventory(3)));
        if worker.join().is_err() {
            log::error!("inventory worker panicked");
        }
    });
    // Outside any span: no trace keys.
    legacy::charge(43, 100);
}
