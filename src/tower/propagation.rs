//! Which propagator the middleware uses, and header-map adapters for it.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::Context;

use crate::{Carrier, TextMapCarrier};

/// The globally installed propagator (the default), or an explicit one.
#[derive(Clone, Default)]
pub(crate) struct Propagation(Option<Arc<dyn TextMapPropagator + Send + Sync>>);

impl fmt::Debug for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Custom" } else { "Global" })
    }
}

impl Propagation {
    pub(crate) fn custom<P: TextMapPropagator + Send + Sync + 'static>(propagator: P) -> Self {
        Self(Some(Arc::new(propagator)))
    }

    /// The context `headers` carry, on top of an empty context: what the
    /// thread happens to have attached never leaks into a request.
    pub(crate) fn extract(&self, headers: &HeaderMap) -> Context {
        let extractor = Headers(headers);
        let empty = Context::new();
        match &self.0 {
            Some(propagator) => propagator.extract_with_context(&empty, &extractor),
            None => opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract_with_context(&empty, &extractor)
            }),
        }
    }

    pub(crate) fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        let mut injector = Carrier::new(headers);
        match &self.0 {
            Some(propagator) => propagator.inject_context(cx, &mut injector),
            None => opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.inject_context(cx, &mut injector);
            }),
        }
    }
}

/// Read-only extraction from a header map (every value of a repeated header).
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        TextMapCarrier::values(self.0, key).first().copied()
    }

    fn keys(&self) -> Vec<&str> {
        TextMapCarrier::names(self.0)
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values = TextMapCarrier::values(self.0, key);
        (!values.is_empty()).then_some(values)
    }
}
