//! Export mode through the builder with an in-memory exporter.

mod support;

use support::{ids_of, Captured};
use tracing_correlation::opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SpanData,
};
use tracing_correlation::TraceIds;

fn run(span_events: bool) -> (Vec<SpanData>, Vec<serde_json::Value>, TraceIds) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .tracer_provider(provider)
        .otel_span_events(span_events)
        .build()
        .unwrap();
    let ids = tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("job");
        let _e = span.enter();
        tracing::info!(n = 1, "one");
        tracing::warn!("two");
        TraceIds::current().unwrap()
    });
    // The in-memory exporter forgets its spans at shutdown (guard drop), and
    // the simple processor exported each span when it closed.
    let spans = exporter.get_finished_spans().unwrap();
    drop(guard);
    (spans, out.lines(), ids)
}

#[test]
fn events_are_not_copied_into_spans_unless_asked() {
    let (spans, lines, ids) = run(false);
    assert_eq!(spans.len(), 1);
    assert_eq!(
        TraceIds::from_span_context(&spans[0].span_context),
        Some(ids)
    );
    assert_eq!(spans[0].events.len(), 0, "span events are off by default");
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(ids_of(line).unwrap().1, ids.span_id_hex().as_str());
    }

    let (spans, lines, ids) = run(true);
    assert_eq!(
        spans[0].events.len(),
        2,
        "opted in: each event is a span event"
    );
    assert_eq!(ids_of(&lines[0]).unwrap().0, ids.trace_id_hex().as_str());
}
