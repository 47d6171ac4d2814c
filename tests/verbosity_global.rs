//! The raise under a global subscriber, with a scoped default on the thread
//! (as the crate's context helpers set one): opening and closing a raised
//! request rebuilds callsite interest from inside span callbacks, and every
//! callsite must keep its interest (its own binary: it installs globals).

mod support;

use opentelemetry::baggage::BaggageExt as _;
use support::Captured;
use tracing_correlation::VerbosityConfig;

fn ordinary() {
    tracing::info!("ordinary");
}

#[test]
fn a_raise_under_a_global_subscriber_keeps_every_other_callsite_enabled() {
    let out = Captured::default();
    let guard = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .span_filter("info")
        .log_bridge(false)
        .propagators(false)
        .panic_hook(false)
        .continue_trace_from_env(false)
        .verbosity_from_baggage(VerbosityConfig::new("log.level"))
        .try_init()
        .expect("first global init");
    ordinary();
    // A scoped default of the same dispatcher, as `CapturedContext::enter` sets.
    let _scoped = tracing::dispatcher::set_default(&tracing::dispatcher::get_default(Clone::clone));
    let raised = {
        let _marked = opentelemetry::Context::current_with_baggage([opentelemetry::KeyValue::new(
            "log.level",
            "debug",
        )])
        .attach();
        tracing::info_span!("raised request")
    };
    raised.in_scope(|| {
        tracing::debug!("raised: detail");
        ordinary();
    });
    drop(raised);
    ordinary();
    let messages: Vec<String> = out
        .lines()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        ["ordinary", "raised: detail", "ordinary", "ordinary"]
    );
    let stats = guard.verbosity_stats().unwrap();
    assert_eq!((stats.raised, stats.open), (1, 0));
}
