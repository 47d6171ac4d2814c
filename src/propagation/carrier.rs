//! Carriers: string maps, message headers, and the inject/extract helpers.

use opentelemetry::{
    global,
    propagation::{Extractor, Injector, TextMapPropagator},
    Context,
};
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

/// A string map that can carry propagation fields.
///
/// Names are compared ASCII-case-insensitively, as HTTP header names are.
/// Implemented for `HashMap<String, String>`, `BTreeMap<String, String>`,
/// `Vec<(String, String)>` (message-queue headers, where a name may repeat)
/// and, with the `http` feature, `http::HeaderMap`. Implement it for your own
/// carrier to use [`inject_context`] and [`extract_context`] with it.
///
/// ```
/// use tracing_correlation::TextMapCarrier;
///
/// let mut headers: Vec<(String, String)> = vec![("TraceState".into(), "a=1".into())];
/// headers.push(("tracestate".into(), "b=2".into()));
/// assert_eq!(headers.values("tracestate"), ["a=1", "b=2"]);
/// headers.replace("TRACESTATE", "c=3".into());
/// assert_eq!(headers, [("TRACESTATE".to_owned(), "c=3".to_owned())]);
/// ```
pub trait TextMapCarrier {
    /// Every value stored under `name` (any case), in carrier order.
    fn values(&self, name: &str) -> Vec<&str>;

    /// Every name in the carrier.
    fn names(&self) -> Vec<&str>;

    /// Replaces every value stored under `name` (any case) with `value`.
    fn replace(&mut self, name: &str, value: String);
}

/// The values of `name` (any case) among a map's entries.
fn values_ignoring_case<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    name: &str,
) -> Vec<&'a str> {
    entries
        .into_iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl<S: BuildHasher> TextMapCarrier for HashMap<String, String, S> {
    fn values(&self, name: &str) -> Vec<&str> {
        values_ignoring_case(self, name)
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }

    fn replace(&mut self, name: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.insert(name.to_owned(), value);
    }
}

impl TextMapCarrier for BTreeMap<String, String> {
    fn values(&self, name: &str) -> Vec<&str> {
        values_ignoring_case(self, name)
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }

    fn replace(&mut self, name: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.insert(name.to_owned(), value);
    }
}

impl TextMapCarrier for Vec<(String, String)> {
    fn values(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn names(&self) -> Vec<&str> {
        self.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn replace(&mut self, name: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.push((name.to_owned(), value));
    }
}

/// Adapts any [`TextMapCarrier`] (for instance `&mut Vec<(String, String)>`
/// of message-queue headers) to opentelemetry's [`Injector`](https://docs.rs/opentelemetry/0.33/opentelemetry/propagation/trait.Injector.html) and
/// [`Extractor`](https://docs.rs/opentelemetry/0.33/opentelemetry/propagation/trait.Extractor.html), for use with any [`TextMapPropagator`](https://docs.rs/opentelemetry/0.33/opentelemetry/propagation/text_map_propagator/trait.TextMapPropagator.html).
///
/// `get_all` returns every value of a repeated name, so `tracestate` and
/// `baggage` spread over several entries are combined, and repeated
/// `traceparent` entries are detected (and rejected by the W3C propagators).
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry::Context;
/// use tracing_correlation::{Carrier, W3cPropagator};
///
/// let mut headers = vec![(
///     "traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// )];
/// let cx = W3cPropagator::new().extract_with_context(&Context::new(), &Carrier::new(&mut headers));
/// assert!(cx.span().span_context().is_remote());
/// ```
#[derive(Debug)]
pub struct Carrier<'a, M: ?Sized> {
    map: &'a mut M,
}

impl<'a, M: TextMapCarrier + ?Sized> Carrier<'a, M> {
    /// Wraps a mutable carrier.
    ///
    /// ```
    /// let mut headers: Vec<(String, String)> = Vec::new();
    /// let _carrier = tracing_correlation::Carrier::new(&mut headers);
    /// ```
    pub fn new(map: &'a mut M) -> Self {
        Self { map }
    }
}

impl<M: TextMapCarrier + ?Sized> Injector for Carrier<'_, M> {
    fn set(&mut self, key: &str, value: String) {
        self.map.replace(key, value);
    }
}

impl<M: TextMapCarrier + ?Sized> Extractor for Carrier<'_, M> {
    fn get(&self, key: &str) -> Option<&str> {
        self.map.values(key).first().copied()
    }

    fn keys(&self) -> Vec<&str> {
        self.map.names()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = self.map.values(key);
        (!values.is_empty()).then_some(values)
    }
}

/// Read-only counterpart of [`Carrier`], so extraction needs only `&M`.
pub(crate) struct Reader<'a, M: ?Sized>(pub(crate) &'a M);

impl<M: TextMapCarrier + ?Sized> Extractor for Reader<'_, M> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.values(key).first().copied()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.names()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = self.0.values(key);
        (!values.is_empty()).then_some(values)
    }
}

/// Injects `cx` into `carrier` with the globally installed propagator
/// (`opentelemetry::global::set_text_map_propagator`; a no-op until one is
/// installed).
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
/// use opentelemetry::{global, Context};
/// use std::collections::BTreeMap;
/// use tracing_correlation::{inject_context, W3cPropagator};
///
/// global::set_text_map_propagator(W3cPropagator::new());
/// let span = SpanContext::new(TraceId::from(1), SpanId::from(2), TraceFlags::SAMPLED, false, TraceState::NONE);
/// let mut headers = BTreeMap::new();
/// inject_context(&Context::new().with_remote_span_context(span), &mut headers);
/// assert_eq!(headers["traceparent"], "00-00000000000000000000000000000001-0000000000000002-01");
/// ```
pub fn inject_context<M: TextMapCarrier + ?Sized>(cx: &Context, carrier: &mut M) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut Carrier::new(&mut *carrier));
    });
}

/// Injects the current context (`Context::current()`) into `carrier` with the
/// globally installed propagator.
///
/// ```
/// let mut headers = std::collections::HashMap::new();
/// tracing_correlation::inject_current_context(&mut headers);
/// assert!(headers.is_empty()); // no current span
/// ```
pub fn inject_current_context<M: TextMapCarrier + ?Sized>(carrier: &mut M) {
    Context::map_current(|cx| inject_context(cx, carrier));
}

/// Injects `cx` into `carrier` with an explicit propagator.
///
/// ```
/// use opentelemetry::Context;
/// use tracing_correlation::{inject_context_with, W3cPropagator};
///
/// let mut headers: Vec<(String, String)> = Vec::new();
/// inject_context_with(&W3cPropagator::new(), &Context::new(), &mut headers);
/// assert!(headers.is_empty()); // nothing to propagate
/// ```
pub fn inject_context_with<P, M>(propagator: &P, cx: &Context, carrier: &mut M)
where
    P: TextMapPropagator + ?Sized,
    M: TextMapCarrier + ?Sized,
{
    propagator.inject_context(cx, &mut Carrier::new(carrier));
}

/// Extracts a context from `carrier` with the globally installed propagator,
/// on top of `Context::current()` (fields the carrier lacks, or that are
/// invalid, leave the current values in place).
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::trace::TraceContextExt;
///
/// let headers: HashMap<String, String> = HashMap::new();
/// let cx = tracing_correlation::extract_context(&headers);
/// assert!(!cx.span().span_context().is_valid());
/// ```
pub fn extract_context<M: TextMapCarrier + ?Sized>(carrier: &M) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&Reader(carrier)))
}

/// Extracts a context from `carrier` with an explicit propagator, on top of
/// `Context::current()`.
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
/// use std::collections::BTreeMap;
/// use tracing_correlation::{extract_context_with, W3cPropagator};
///
/// let mut headers = BTreeMap::new();
/// headers.insert(
///     "Traceparent".to_owned(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
/// );
/// let cx = extract_context_with(&W3cPropagator::new(), &headers);
/// assert_eq!(
///     cx.span().span_context().trace_id().to_string(),
///     "4bf92f3577b34da6a3ce929d0e0e4736"
/// );
/// ```
pub fn extract_context_with<P, M>(propagator: &P, carrier: &M) -> Context
where
    P: TextMapPropagator + ?Sized,
    M: TextMapCarrier + ?Sized,
{
    propagator.extract(&Reader(carrier))
}
