//! Event formatters: JSON lines and a human-readable variant, both carrying
//! the trace context.

pub(crate) mod baggage;
pub(crate) mod escape;
pub(crate) mod fields;
pub(crate) mod json;
pub(crate) mod keys;
pub(crate) mod pretty;
pub(crate) mod profile;
pub(crate) mod span_fields;
pub(crate) mod static_fields;
pub(crate) mod time;

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::{FmtContext, FormatFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::ids::TraceIds;
use crate::layer::{with_span_data, SpanData};

/// The span an event belongs to (its explicit parent, else the current span)
/// and its ids: contextual events take the current context's (the entered
/// span's, or an OpenTelemetry context attached inside it, like a remote
/// parent); events with an explicit parent take that span's.
pub(crate) fn event_span_and_ids<'c, S, N>(
    ctx: &'c FmtContext<'_, S, N>,
    event: &Event<'_>,
) -> (Option<SpanRef<'c, S>>, Option<TraceIds>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    span_and_ids(event, |id| ctx.span(id), || ctx.lookup_current())
}

/// [`event_span_and_ids`] for any way of looking spans up (a layer's
/// `Context` as well as a `FmtContext`).
pub(crate) fn span_and_ids<'c, R: LookupSpan<'c>>(
    event: &Event<'_>,
    by_id: impl FnOnce(&tracing_core::span::Id) -> Option<SpanRef<'c, R>>,
    current: impl FnOnce() -> Option<SpanRef<'c, R>>,
) -> (Option<SpanRef<'c, R>>, Option<TraceIds>) {
    let span = match event.parent() {
        Some(id) => by_id(id),
        None if event.is_contextual() => current(),
        None => None,
    };
    let ids = if event.is_contextual() && !is_opentelemetry_internal(event.metadata().target()) {
        TraceIds::current()
    } else {
        span.as_ref()
            .and_then(|span| with_span_data(span, SpanData::ids).flatten())
    };
    (span, ids)
}

/// The id of the parent of `span`, for a line whose ids are `ids`: only when
/// those are the span's own (not a context attached inside it) and the
/// parent span is in the same trace (a span that joined a remote parent or
/// started a new trace has no parent among the lines).
pub(crate) fn parent_span_id<'a, R: LookupSpan<'a>>(
    span: &SpanRef<'a, R>,
    ids: &TraceIds,
) -> Option<opentelemetry::trace::SpanId> {
    let own = with_span_data(span, SpanData::ids).flatten()?;
    if own.span_id() != ids.span_id() {
        return None;
    }
    let parent = with_span_data(&span.parent()?, SpanData::ids).flatten()?;
    (parent.trace_id() == ids.trace_id()).then(|| parent.span_id())
}

/// OpenTelemetry's own diagnostics may be emitted while its context stack is
/// borrowed; reading the current context then would panic, so their ids come
/// from the span instead.
pub(crate) fn is_opentelemetry_internal(target: &str) -> bool {
    target.starts_with("opentelemetry")
}
