//! A link to another trace, written as span fields so that every line logged
//! inside the span shows it, with or without an OpenTelemetry exporter.
//!
//! The tower server layer records an untrusted caller this way
//! (`trust_incoming(false)`), and [`new_root`](crate::new_root) records the
//! ambient span with `link_to_ambient()`: one pair of field names, one
//! rendering (lowercase hex), so a query for `link.trace_id` finds both.

use opentelemetry::trace::SpanContext;
use tracing::Span;

use crate::ids::TraceIds;

/// The span field holding the linked trace id (32 lowercase hex digits).
pub(crate) const LINK_TRACE_ID: &str = "link.trace_id";
/// The span field holding the linked span id (16 lowercase hex digits).
pub(crate) const LINK_SPAN_ID: &str = "link.span_id";

/// Whether `span` declares both link fields (a span can only record fields
/// its callsite declared, as `tracing::field::Empty`).
pub(crate) fn declares_link_fields(span: &Span) -> bool {
    span.metadata().is_some_and(|metadata| {
        let fields = metadata.fields();
        fields.field(LINK_TRACE_ID).is_some() && fields.field(LINK_SPAN_ID).is_some()
    })
}

/// Records `linked`'s ids as `link.trace_id` / `link.span_id` on `span`.
/// Does nothing for an invalid context, a disabled span, or fields the span
/// does not declare.
pub(crate) fn record_link_fields(span: &Span, linked: &SpanContext) {
    if let Some(ids) = TraceIds::from_span_context(linked) {
        span.record(LINK_TRACE_ID, ids.trace_id_hex().as_str());
        span.record(LINK_SPAN_ID, ids.span_id_hex().as_str());
    }
}
