//! Strict W3C propagation: trace context, baggage, carriers, child processes.
//!
//! Independent of the rest of the crate: it only needs `opentelemetry`'s
//! propagation traits. See each item for the exact rules it enforces.

mod baggage;
mod carrier;
mod composite;
mod env;
#[cfg(feature = "http")]
mod http;
mod trace_context;

pub use baggage::W3cBaggagePropagator;
pub use carrier::{
    extract_context, extract_context_with, inject_context, inject_context_with,
    inject_current_context, Carrier, TextMapCarrier,
};
pub use composite::{propagator_from_env, propagator_from_env_with, W3cPropagator};
pub use env::{
    context_from_env, context_from_env_with, inject_into_command, inject_into_command_with,
};
pub use trace_context::{
    format_traceparent, parse_traceparent, parse_tracestate, TraceparentError, TracestateError,
    W3cTraceContextPropagator, W3cTracestate,
};
