//! Environment variables as carriers, for child processes.
//!
//! Follows OpenTelemetry's "Environment Variables as Context Propagation
//! Carriers": the variable names are the propagator's field names in
//! uppercase (`TRACEPARENT`, `TRACESTATE`, `BAGGAGE`).

use super::carrier::Reader;
use super::composite::W3cPropagator;
use opentelemetry::{
    propagation::{Injector, TextMapPropagator},
    Context,
};
use std::process::Command;

/// Collects what a propagator injects, under uppercase names.
struct EnvInjector(Vec<(String, String)>);

impl Injector for EnvInjector {
    fn set(&mut self, key: &str, value: String) {
        let name = key.to_ascii_uppercase();
        self.0.retain(|(k, _)| *k != name);
        self.0.push((name, value));
    }
}

/// Sets `TRACEPARENT`, `TRACESTATE` and `BAGGAGE` on `command` from the
/// current context (`Context::current()`), in the W3C formats the env-carrier
/// specification prescribes ([`W3cPropagator::new`], whatever propagator is
/// installed globally).
///
/// These variables are first removed from the command's environment, so a
/// child never inherits this process's own (stale) `TRACEPARENT` when there
/// is no current span.
///
/// ```
/// use std::process::Command;
///
/// let mut command = Command::new("env");
/// tracing_correlation::inject_into_command(&mut command);
/// // no current span: the three variables are explicitly removed
/// assert!(command.get_envs().all(|(_, value)| value.is_none()));
/// ```
pub fn inject_into_command(command: &mut Command) {
    Context::map_current(|cx| inject_into_command_with(&W3cPropagator::new(), cx, command));
}

/// Sets the environment variables `propagator` injects for `cx` on `command`
/// (names uppercased), after removing every variable named by the
/// propagator's fields.
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
/// use opentelemetry::Context;
/// use std::ffi::OsStr;
/// use std::process::Command;
/// use tracing_correlation::{inject_into_command_with, W3cPropagator};
///
/// let span = SpanContext::new(TraceId::from(1), SpanId::from(2), TraceFlags::SAMPLED, false, TraceState::NONE);
/// let cx = Context::new().with_remote_span_context(span);
/// let mut command = Command::new("env");
/// inject_into_command_with(&W3cPropagator::new(), &cx, &mut command);
/// let traceparent = command
///     .get_envs()
///     .find(|(name, _)| *name == OsStr::new("TRACEPARENT"))
///     .and_then(|(_, value)| value);
/// assert_eq!(
///     traceparent,
///     Some(OsStr::new("00-00000000000000000000000000000001-0000000000000002-01"))
/// );
/// ```
pub fn inject_into_command_with<P>(propagator: &P, cx: &Context, command: &mut Command)
where
    P: TextMapPropagator + ?Sized,
{
    for field in propagator.fields() {
        command.env_remove(field.to_ascii_uppercase());
    }
    let mut injector = EnvInjector(Vec::new());
    propagator.inject_context(cx, &mut injector);
    command.envs(injector.0);
}

/// Extracts the context this process was started with from `TRACEPARENT`,
/// `TRACESTATE` and `BAGGAGE`, on top of `Context::current()`, with the
/// same strict validation as for headers. Variables that are unset, not
/// UTF-8 or invalid are ignored.
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
///
/// let cx = tracing_correlation::context_from_env();
/// let _remote_parent = cx.span().span_context().is_valid();
/// ```
#[must_use]
pub fn context_from_env() -> Context {
    context_from_env_with(|name| std::env::var(name).ok())
}

/// Like [`context_from_env`], reading variables through `lookup`.
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
/// use tracing_correlation::context_from_env_with;
///
/// let cx = context_from_env_with(|name| match name {
///     "TRACEPARENT" => Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
///     _ => None,
/// });
/// assert_eq!(cx.span().span_context().span_id().to_string(), "00f067aa0ba902b7");
/// ```
#[must_use]
pub fn context_from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Context {
    let propagator = W3cPropagator::new();
    let vars: Vec<(String, String)> = propagator
        .fields()
        .filter_map(|field| {
            lookup(&field.to_ascii_uppercase()).map(|value| (field.to_owned(), value))
        })
        .collect();
    propagator.extract(&Reader(&vars))
}
