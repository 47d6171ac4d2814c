mod propagation;

pub use propagation::{
    context_from_env, context_from_env_with, extract_context, extract_context_with,
    format_traceparent, inject_context, inject_context_with, inject_current_context,
    inject_into_command, inject_into_command_with, parse_traceparent, parse_tracestate,
    propagator_from_env, propagator_from_env_with, Carrier, TextMapCarrier, TraceparentError,
    TracestateError, W3cBaggagePropagator, W3cPropagator, W3cTraceContextPropagator,
};
