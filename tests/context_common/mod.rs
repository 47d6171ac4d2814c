//! What every context test checks: a worker started by a helper sees the
//! caller's exact context (ids, baggage, subscriber), its spans are children
//! of the caller's span, and the caller's context is unchanged afterwards.
#![allow(dead_code, unreachable_pub)]

use opentelemetry::baggage::BaggageExt;
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use tracing_correlation::TraceIds;

use crate::support::{ids_of, Harness, Mode};

pub fn hex(ids: TraceIds) -> (String, String, String) {
    (
        ids.trace_id_hex().to_string(),
        ids.span_id_hex().to_string(),
        ids.trace_flags_hex().to_string(),
    )
}

pub fn tenant() -> Option<String> {
    Context::map_current(|cx| cx.baggage().get("tenant").map(|v| v.as_str().to_owned()))
}

pub fn lines_with<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

pub fn line_with<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    let found = lines_with(lines, message);
    assert_eq!(found.len(), 1, "exactly one line {message:?} in {lines:#?}");
    found[0]
}

/// What a worker saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    pub current: Option<TraceIds>,
    pub tenant: Option<String>,
    pub child: Option<TraceIds>,
    pub child_tenant: Option<String>,
}

/// The worker's side: log, look at the context, open a child span.
pub fn worker_body() -> WorkerView {
    tracing::info!("worker line");
    let current = TraceIds::current();
    let tenant_seen = tenant();
    let child = tracing::info_span!("worker_child");
    let (child_ids, child_tenant) = child.in_scope(|| {
        tracing::info!("worker child line");
        (TraceIds::current(), tenant())
    });
    WorkerView {
        current,
        tenant: tenant_seen,
        child: child_ids,
        child_tenant,
    }
}

pub type Body = fn() -> WorkerView;
pub type Finish = Box<dyn FnOnce() -> WorkerView>;

/// Runs `start` inside a caller span with baggage attached *after* the span
/// was entered; `start` hands `worker_body` to a helper and returns how to
/// wait for it, which is called after the caller's context was left.
/// Asserts the caller's context is unchanged right after `start`, and
/// returns the worker's view and the caller's ids.
pub fn hop(h: &Harness, start: impl FnOnce(Body) -> Finish) -> (WorkerView, TraceIds) {
    h.run(|| {
        let (finish, caller_ids) = {
            let caller = tracing::info_span!("caller");
            let _entered = caller.enter();
            let _baggage =
                Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
            let caller_ids = TraceIds::current().expect("caller is in a span");
            let finish = start(worker_body);
            // After the helper returned, the caller's context is unchanged.
            assert_eq!(TraceIds::current(), Some(caller_ids), "caller ids changed");
            assert_eq!(tenant().as_deref(), Some("acme"), "caller baggage changed");
            assert_eq!(
                tracing::Span::current().id(),
                caller.id(),
                "caller span changed"
            );
            (finish, caller_ids)
        };
        assert_eq!(TraceIds::current(), None);
        (finish(), caller_ids)
    })
}

/// The worker saw exactly the caller's context, and its child span is the
/// caller span's child (exported parent id in OpenTelemetry mode).
pub fn assert_carried(h: &Harness, view: &WorkerView, caller: TraceIds) {
    let mode = h.mode;
    assert_eq!(view.current, Some(caller), "{mode:?}: worker's current ids");
    assert_eq!(
        view.tenant.as_deref(),
        Some("acme"),
        "{mode:?}: worker's baggage"
    );
    assert_eq!(
        view.child_tenant.as_deref(),
        Some("acme"),
        "{mode:?}: child's baggage"
    );
    let child = view.child.expect("child span has ids");
    assert_eq!(
        child.trace_id(),
        caller.trace_id(),
        "{mode:?}: child's trace"
    );
    assert_ne!(
        child.span_id(),
        caller.span_id(),
        "{mode:?}: child is a new span"
    );
    let lines = h.lines();
    assert_eq!(
        ids_of(line_with(&lines, "worker line")),
        Some(hex(caller)),
        "{mode:?}"
    );
    assert_eq!(
        ids_of(line_with(&lines, "worker child line")),
        Some(hex(child)),
        "{mode:?}"
    );
    if mode == Mode::Otel {
        let exported = h.exported("worker_child");
        assert_eq!(
            TraceIds::from_span_context(&exported.span_context),
            Some(child)
        );
        assert_eq!(exported.parent_span_id, caller.span_id(), "exported parent");
    }
}

/// The worker saw no trace at all, as happens without the helpers.
pub fn assert_lost(h: &Harness, view: &WorkerView, caller: TraceIds) {
    let mode = h.mode;
    assert_eq!(view.current, None, "{mode:?}");
    assert_eq!(view.tenant, None, "{mode:?}");
    assert_ne!(
        view.child.map(|c| c.trace_id()),
        Some(caller.trace_id()),
        "{mode:?}"
    );
}
