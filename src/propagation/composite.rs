//! Trace context + baggage in one propagator, and `OTEL_PROPAGATORS`.

use super::baggage::{W3cBaggagePropagator, BAGGAGE};
use super::trace_context::{W3cTraceContextPropagator, TRACEPARENT, TRACESTATE};
use opentelemetry::{
    propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator},
    Context,
};
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The standard variable selecting propagators.
const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// W3C trace context and/or W3C baggage, as one [`TextMapPropagator`](https://docs.rs/opentelemetry/0.33/opentelemetry/propagation/text_map_propagator/trait.TextMapPropagator.html).
///
/// [`W3cPropagator::new`] (also `Default`) enables both, which is the
/// OpenTelemetry default `tracecontext,baggage`. [`propagator_from_env`]
/// returns this type, configured by `OTEL_PROPAGATORS`; with both parts
/// disabled it is a no-op propagator. A concrete type rather than a
/// `Box<dyn TextMapPropagator>` lets callers inspect and compare what was
/// selected; it is `Send + Sync + 'static` and can be passed to
/// `opentelemetry::global::set_text_map_propagator`.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use tracing_correlation::W3cPropagator;
///
/// let propagator = W3cPropagator::new();
/// assert_eq!(
///     propagator.fields().collect::<Vec<_>>(),
///     ["traceparent", "tracestate", "baggage"]
/// );
/// assert_eq!(W3cPropagator::none().fields().count(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct W3cPropagator {
    trace_context: bool,
    baggage: bool,
}

impl Default for W3cPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl W3cPropagator {
    /// Trace context and baggage.
    ///
    /// ```
    /// let p = tracing_correlation::W3cPropagator::new();
    /// assert!(p.trace_context_enabled() && p.baggage_enabled());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            trace_context: true,
            baggage: true,
        }
    }

    /// Neither: injects nothing, extracts the context unchanged.
    ///
    /// ```
    /// let p = tracing_correlation::W3cPropagator::none();
    /// assert!(!p.trace_context_enabled() && !p.baggage_enabled());
    /// ```
    #[must_use]
    pub const fn none() -> Self {
        Self {
            trace_context: false,
            baggage: false,
        }
    }

    /// Enables or disables the `traceparent`/`tracestate` part.
    ///
    /// ```
    /// let p = tracing_correlation::W3cPropagator::new().with_trace_context(false);
    /// assert!(!p.trace_context_enabled());
    /// ```
    #[must_use]
    pub const fn with_trace_context(mut self, enabled: bool) -> Self {
        self.trace_context = enabled;
        self
    }

    /// Enables or disables the `baggage` part.
    ///
    /// ```
    /// let p = tracing_correlation::W3cPropagator::new().with_baggage(false);
    /// assert!(!p.baggage_enabled());
    /// ```
    #[must_use]
    pub const fn with_baggage(mut self, enabled: bool) -> Self {
        self.baggage = enabled;
        self
    }

    /// Whether `traceparent`/`tracestate` are propagated.
    ///
    /// ```
    /// assert!(tracing_correlation::W3cPropagator::new().trace_context_enabled());
    /// ```
    #[must_use]
    pub const fn trace_context_enabled(&self) -> bool {
        self.trace_context
    }

    /// Whether `baggage` is propagated.
    ///
    /// ```
    /// assert!(tracing_correlation::W3cPropagator::new().baggage_enabled());
    /// ```
    #[must_use]
    pub const fn baggage_enabled(&self) -> bool {
        self.baggage
    }
}

fn all_fields() -> &'static [String; 3] {
    static FIELDS: OnceLock<[String; 3]> = OnceLock::new();
    FIELDS.get_or_init(|| {
        [
            TRACEPARENT.to_owned(),
            TRACESTATE.to_owned(),
            BAGGAGE.to_owned(),
        ]
    })
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if self.trace_context {
            W3cTraceContextPropagator::new().inject_context(cx, injector);
        }
        if self.baggage {
            W3cBaggagePropagator::new().inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let cx = if self.trace_context {
            W3cTraceContextPropagator::new().extract_with_context(cx, extractor)
        } else {
            cx.clone()
        };
        if self.baggage {
            W3cBaggagePropagator::new().extract_with_context(&cx, extractor)
        } else {
            cx
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        let fields = all_fields();
        let selected = match (self.trace_context, self.baggage) {
            (true, true) => &fields[..],
            (true, false) => &fields[..2],
            (false, true) => &fields[2..],
            (false, false) => &fields[..0],
        };
        FieldIter::new(selected)
    }
}

/// Parses an `OTEL_PROPAGATORS` value; returns the selection and the names
/// that were not understood (in order, without duplicates).
pub(crate) fn parse_otel_propagators(value: Option<&str>) -> (W3cPropagator, Vec<String>) {
    let names: Vec<String> = value
        .unwrap_or("")
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    if names.is_empty() {
        return (W3cPropagator::new(), Vec::new());
    }
    let mut selected = W3cPropagator::none();
    let mut unknown: Vec<String> = Vec::new();
    let only_none = names.iter().all(|name| name == "none");
    for name in names {
        match name.as_str() {
            "tracecontext" => selected.trace_context = true,
            "baggage" => selected.baggage = true,
            "none" if only_none => {}
            _ => {
                if !unknown.contains(&name) {
                    unknown.push(name);
                }
            }
        }
    }
    (selected, unknown)
}

/// Prints each unknown name once per process, so repeated calls stay quiet.
fn report_unknown(unknown: Vec<String>) {
    static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut reported = REPORTED.lock().unwrap_or_else(PoisonError::into_inner);
    for name in unknown {
        if reported.insert(name.clone()) {
            crate::diagnostics::report!(
                "{OTEL_PROPAGATORS} names unsupported propagator {name:?}; \
                 skipped (supported: tracecontext, baggage, none)"
            );
        }
    }
}

/// The propagator selected by the `OTEL_PROPAGATORS` environment variable.
///
/// Same as [`propagator_from_env_with`] reading the process environment
/// (a value that is not UTF-8 counts as unset).
///
/// ```
/// use opentelemetry::global;
///
/// global::set_text_map_propagator(tracing_correlation::propagator_from_env());
/// ```
#[must_use]
pub fn propagator_from_env() -> W3cPropagator {
    propagator_from_env_with(|name| std::env::var(name).ok())
}

/// The propagator selected by `OTEL_PROPAGATORS`, read through `lookup`.
///
/// The value is a comma-separated list, case-insensitive, each name trimmed:
/// - `tracecontext` enables W3C trace context, `baggage` W3C baggage;
/// - unset, empty, or only blanks and commas: the default `tracecontext,baggage`;
/// - `none` alone: a no-op propagator ([`W3cPropagator::none`]); `none`
///   mixed with other names is ignored and reported;
/// - any other name (`b3`, `jaeger`, …) is reported once per process on
///   stderr and skipped. If no name is supported the result is a no-op
///   propagator: headers the operator did not ask for are not sent.
///
/// ```
/// use tracing_correlation::{propagator_from_env_with, W3cPropagator};
///
/// let p = propagator_from_env_with(|_| Some(" Baggage ".to_owned()));
/// assert_eq!(p, W3cPropagator::none().with_baggage(true));
/// assert_eq!(propagator_from_env_with(|_| None), W3cPropagator::new());
/// ```
#[must_use]
pub fn propagator_from_env_with(lookup: impl Fn(&str) -> Option<String>) -> W3cPropagator {
    let value = lookup(OTEL_PROPAGATORS);
    let (propagator, unknown) = parse_otel_propagators(value.as_deref());
    report_unknown(unknown);
    propagator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reports_unknown_names_once_each() {
        let (p, unknown) = parse_otel_propagators(Some("b3, tracecontext,B3,jaeger"));
        assert_eq!(p, W3cPropagator::none().with_trace_context(true));
        assert_eq!(unknown, ["b3", "jaeger"]);
    }

    #[test]
    fn none_mixed_with_others_is_reported() {
        let (p, unknown) = parse_otel_propagators(Some("none,baggage"));
        assert_eq!(p, W3cPropagator::none().with_baggage(true));
        assert_eq!(unknown, ["none"]);
        let (p, unknown) = parse_otel_propagators(Some("none, NONE"));
        assert_eq!(p, W3cPropagator::none());
        assert!(unknown.is_empty());
    }
}
