//! `http::HeaderMap` as a carrier (feature `http`).

use super::carrier::TextMapCarrier;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Header names are case-insensitive; values that are not visible ASCII
/// (`HeaderValue::to_str` fails) are ignored; every value of a repeated header
/// is returned, so several `tracestate`/`baggage` headers are combined.
/// `replace` with a name or value that is not a valid header leaves the map
/// unchanged.
///
/// ```
/// use http::HeaderMap;
/// use opentelemetry::trace::TraceContextExt;
/// use tracing_correlation::{extract_context_with, inject_context_with, W3cPropagator};
///
/// let mut incoming = HeaderMap::new();
/// incoming.insert(
///     "TraceParent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?,
/// );
/// incoming.append("tracestate", "a=1".parse()?);
/// incoming.append("tracestate", "b=2".parse()?);
/// let cx = extract_context_with(&W3cPropagator::new(), &incoming);
/// assert_eq!(cx.span().span_context().trace_state().header(), "a=1,b=2");
///
/// let mut outgoing = HeaderMap::new();
/// inject_context_with(&W3cPropagator::new(), &cx, &mut outgoing);
/// assert_eq!(outgoing["tracestate"], "a=1,b=2");
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
impl TextMapCarrier for HeaderMap {
    fn values(&self, name: &str) -> Vec<&str> {
        self.get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    fn names(&self) -> Vec<&str> {
        self.keys().map(HeaderName::as_str).collect()
    }

    fn replace(&mut self, name: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.insert(name, value);
        }
    }
}
