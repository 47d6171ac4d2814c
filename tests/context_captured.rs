//! CapturedContext itself: run, wrap, wrap_fn, bind, futures, new roots and
//! links, in both id modes.

mod context_common;
mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use context_common::{assert_carried, assert_lost, hex, hop, line_with, tenant, Finish};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use support::{ids_of, Harness, Mode, MODES};
use tracing_correlation::{
    bind, new_root, root_span, CapturedContext, FutureContextExt as _, TraceIds,
};

fn on_thread<R>(f: impl FnOnce() -> R + Send + 'static) -> Finish
where
    R: Into<context_common::WorkerView> + Send + 'static,
{
    let handle = std::thread::spawn(f);
    Box::new(move || handle.join().expect("worker thread").into())
}

#[test]
fn run_on_another_thread_carries_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let context = CapturedContext::capture();
            on_thread(move || context.run(body))
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn wrap_binds_a_closure_to_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| on_thread(CapturedContext::capture().wrap(body)));
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bind_is_capture_then_wrap() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| on_thread(bind(body)));
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn a_stored_callback_from_wrap_fn_runs_in_the_registering_context_on_every_call() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            type Callback = Box<dyn Fn(()) -> context_common::WorkerView + Send + Sync>;
            let callback: Callback = Box::new(CapturedContext::capture().wrap_fn(move |()| body()));
            on_thread(move || {
                let first = callback(());
                assert_eq!(
                    callback(()).current,
                    first.current,
                    "second call, same context"
                );
                first
            })
        });
        // Two calls: take the first lines' check from the view only.
        assert_eq!(view.current, Some(caller), "{mode:?}");
        assert_eq!(view.tenant.as_deref(), Some("acme"));
        let lines = h.lines();
        let worker_lines = context_common::lines_with(&lines, "worker line");
        assert_eq!(worker_lines.len(), 2);
        for line in worker_lines {
            assert_eq!(ids_of(line), Some(hex(caller)), "{mode:?}");
        }
    }
}

#[test]
fn a_stored_plain_callback_loses_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let callback: Box<dyn Fn() -> context_common::WorkerView + Send> = Box::new(body);
            on_thread(callback)
        });
        assert_lost(&h, &view, caller);
    }
}

struct NoopWaker;
impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future to completion on this thread, yielding between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Returns `Pending` once, so the future is polled twice.
struct YieldOnce(bool);
impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn a_future_in_context_sees_the_callers_context_on_every_poll_and_not_between() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let future = async move {
                let before = TraceIds::current();
                YieldOnce(false).await;
                assert_eq!(TraceIds::current(), before, "second poll, same context");
                body()
            }
            .in_current_context();
            on_thread(move || {
                let mut future = Box::pin(future);
                let waker = Waker::from(Arc::new(NoopWaker));
                let mut cx = TaskContext::from_waker(&waker);
                assert!(future.as_mut().poll(&mut cx).is_pending());
                // Between polls the worker thread has no context.
                assert_eq!(TraceIds::current(), None);
                block_on(future)
            })
        });
        assert_carried(&h, &view, caller);
    }
}

struct LogsOnDrop;
impl Drop for LogsOnDrop {
    fn drop(&mut self) {
        tracing::info!("dropped");
    }
}

#[test]
fn a_future_dropped_before_completion_is_dropped_inside_its_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let caller = h.run(|| {
            let _caller = tracing::info_span!("caller").entered();
            let guard = LogsOnDrop;
            let future = async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
            .in_current_context();
            let caller = TraceIds::current().unwrap();
            std::thread::spawn(move || {
                let mut future = Box::pin(future);
                let waker = Waker::from(Arc::new(NoopWaker));
                assert!(future
                    .as_mut()
                    .poll(&mut TaskContext::from_waker(&waker))
                    .is_pending());
                drop(future);
            })
            .join()
            .unwrap();
            caller
        });
        assert_eq!(
            ids_of(line_with(&h.lines(), "dropped")),
            Some(hex(caller)),
            "{mode:?}"
        );
    }
}

#[test]
fn run_on_the_same_thread_restores_exactly_what_was_there() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let captured = {
                let _a = tracing::info_span!("a").entered();
                let _bag =
                    Context::current_with_baggage([KeyValue::new("tenant", "a-corp")]).attach();
                (CapturedContext::capture(), TraceIds::current().unwrap())
            };
            let b = tracing::info_span!("b");
            let _b = b.enter();
            let _bag = Context::current_with_baggage([KeyValue::new("tenant", "b-corp")]).attach();
            let b_ids = TraceIds::current().unwrap();
            let inside = captured.0.run(|| {
                assert_eq!(tracing::Span::current().id(), captured.0.span().id());
                (TraceIds::current(), tenant())
            });
            assert_eq!(
                inside,
                (Some(captured.1), Some("a-corp".to_owned())),
                "{mode:?}"
            );
            assert_eq!(TraceIds::current(), Some(b_ids), "{mode:?}");
            assert_eq!(tenant().as_deref(), Some("b-corp"));
            assert_eq!(tracing::Span::current().id(), b.id());
        });
    }
}

fn remote_context() -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    ))
}

#[test]
fn a_remote_parent_attached_inside_the_span_travels_and_parents_the_workers_spans() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (child, caller_span) = h.run(|| {
            let caller = tracing::info_span!("caller");
            let _entered = caller.enter();
            let caller_span = TraceIds::current().unwrap();
            let _remote = remote_context().attach();
            let context = CapturedContext::capture();
            let child = std::thread::spawn(move || {
                context.run(|| {
                    let _child = tracing::info_span!("worker_child").entered();
                    tracing::info!("in child");
                    TraceIds::current().unwrap()
                })
            })
            .join()
            .unwrap();
            (child, caller_span)
        });
        // The worker sees what the caller saw: the remote parent is current.
        assert_eq!(
            child.trace_id(),
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            "{mode:?}"
        );
        assert_ne!(child.trace_id(), caller_span.trace_id());
        assert_eq!(ids_of(line_with(&h.lines(), "in child")), Some(hex(child)));
        if mode == Mode::Otel {
            assert_eq!(
                h.exported("worker_child").parent_span_id,
                SpanId::from(0x00f0_67aa_0ba9_02b7)
            );
        }
    }
}

#[test]
fn new_root_detaches_from_the_ambient_trace_baggage_and_remote_parent() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (job, request) = h.run(|| {
            let _remote = remote_context().attach();
            let _request = tracing::info_span!("request").entered();
            let _bag = Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
            let request = TraceIds::current().unwrap();
            let root = new_root(tracing::info_span!(parent: None, "job")).capture();
            let job = std::thread::spawn(move || {
                root.run(|| {
                    tracing::info!("in job");
                    let _step = tracing::info_span!("step").entered();
                    (TraceIds::current(), tenant())
                })
            })
            .join()
            .unwrap();
            assert_eq!(TraceIds::current(), Some(request), "ambient restored");
            assert_eq!(tenant().as_deref(), Some("acme"));
            (job, request)
        });
        let (step, job_tenant) = job;
        let step = step.unwrap();
        assert_ne!(step.trace_id(), request.trace_id(), "{mode:?}");
        assert_ne!(
            step.trace_id(),
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        assert_eq!(job_tenant, None, "{mode:?}: ambient baggage is not kept");
        let line = line_with(&h.lines(), "in job").clone();
        assert_eq!(
            line["trace_id"].as_str(),
            Some(&*step.trace_id_hex()),
            "{mode:?}"
        );
        if mode == Mode::Otel {
            let job = h.exported("job");
            assert_eq!(job.parent_span_id, SpanId::INVALID);
            assert!(job.links.is_empty(), "no link unless asked");
            assert_eq!(
                h.exported("step").parent_span_id,
                job.span_context.span_id()
            );
        }
    }
}

#[test]
fn new_root_can_link_to_the_ambient_span_and_keep_baggage() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (inside, request) = h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let _bag = Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
            let request = TraceIds::current().unwrap();
            let inside = new_root(tracing::info_span!(parent: None, "job"))
                .link_to_ambient()
                .keep_baggage()
                .run(|| (TraceIds::current().unwrap(), tenant()));
            (inside, request)
        });
        assert_ne!(inside.0.trace_id(), request.trace_id(), "{mode:?}");
        assert_eq!(inside.1.as_deref(), Some("acme"), "{mode:?}: kept baggage");
        if mode == Mode::Otel {
            let job = h.exported("job");
            assert_eq!(job.parent_span_id, SpanId::INVALID);
            let links: Vec<_> = job
                .links
                .iter()
                .map(|l| TraceIds::from_span_context(&l.span_context))
                .collect();
            assert_eq!(
                links,
                [Some(request)],
                "exactly one link, to the request span"
            );
        }
    }
}

#[test]
fn a_disabled_root_span_still_hides_the_ambient_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let inside = h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let _bag = Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
            new_root(tracing::Span::none()).run(|| (TraceIds::current(), tenant()))
        });
        assert_eq!(inside, (None, None), "{mode:?}");
    }
}

#[test]
fn outside_any_span_capture_carries_no_trace_and_hides_the_workers() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let nothing = CapturedContext::capture();
            assert_eq!(nothing.trace_ids(), None);
            let _other = tracing::info_span!("other").entered();
            assert!(TraceIds::current().is_some());
            assert_eq!(nothing.run(TraceIds::current), None, "{mode:?}");
            assert!(TraceIds::current().is_some());
        });
    }
}

#[test]
fn captured_trace_ids_are_the_callers() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let _a = tracing::info_span!("a").entered();
            assert_eq!(
                CapturedContext::capture().trace_ids(),
                TraceIds::current(),
                "{mode:?}"
            );
        });
    }
}

#[test]
fn baggage_entries_are_exactly_the_callers() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let _a = tracing::info_span!("a").entered();
            let _bag = Context::current_with_baggage([
                KeyValue::new("tenant", "acme"),
                KeyValue::new("user", "ada"),
            ])
            .attach();
            let context = CapturedContext::capture();
            let seen = std::thread::spawn(move || {
                context.run(|| {
                    Context::map_current(|cx| {
                        let mut entries: Vec<_> = cx
                            .baggage()
                            .iter()
                            .map(|(k, (v, _))| format!("{k}={v}"))
                            .collect();
                        entries.sort();
                        entries
                    })
                })
            })
            .join()
            .unwrap();
            assert_eq!(seen, ["tenant=acme", "user=ada"], "{mode:?}");
        });
    }
}

#[test]
fn a_disabled_parent_none_span_lets_the_ambient_trace_show_through() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let _bag = Context::current_with_baggage([KeyValue::new("tenant", "acme")]).attach();
            let request = TraceIds::current();
            // What a `parent: None` span filtered out by the subscriber is.
            let job = tracing::Span::none();
            let inside = job.in_scope(|| (TraceIds::current(), tenant()));
            assert_eq!(inside, (request, Some("acme".to_owned())), "{mode:?}");
        });
    }
}

#[test]
fn new_root_link_to_ambient_writes_the_ambient_ids_as_link_fields_on_its_lines() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (job, request) = h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let request = TraceIds::current().unwrap();
            let job = new_root(root_span!(tracing::Level::INFO, "job", attempt = 2))
                .link_to_ambient()
                .run(|| {
                    tracing::info!("in job");
                    TraceIds::current().unwrap()
                });
            (job, request)
        });
        assert_ne!(job.trace_id(), request.trace_id(), "{mode:?}: a new trace");
        let line = line_with(&h.lines(), "in job").clone();
        assert_eq!(line["trace_id"].as_str(), Some(&*job.trace_id_hex()));
        assert_eq!(line["span_id"].as_str(), Some(&*job.span_id_hex()));
        assert_eq!(
            line["span"],
            serde_json::json!({
                "name": "job",
                "attempt": 2,
                "link.trace_id": request.trace_id_hex().as_str(),
                "link.span_id": request.span_id_hex().as_str(),
            }),
            "{mode:?}"
        );
        if mode == Mode::Otel {
            let exported = h.exported("job");
            assert_eq!(exported.parent_span_id, SpanId::INVALID);
            let attribute = |key: &str| {
                exported
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.to_string())
            };
            assert_eq!(
                attribute("link.trace_id"),
                Some(request.trace_id_hex().to_string())
            );
            assert_eq!(
                attribute("link.span_id"),
                Some(request.span_id_hex().to_string())
            );
        }
    }
}

#[test]
fn new_root_links_to_an_attached_remote_parent_when_that_is_the_ambient_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let _remote = remote_context().attach();
            new_root(root_span!(tracing::Level::INFO, "job"))
                .link_to_ambient()
                .run(|| tracing::info!("in job"));
        });
        let line = line_with(&h.lines(), "in job").clone();
        assert_eq!(
            line["span"]["link.trace_id"].as_str(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{mode:?}"
        );
        assert_eq!(
            line["span"]["link.span_id"].as_str(),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(
            line["trace_id"].as_str(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}

#[test]
fn new_root_without_ambient_trace_or_without_link_records_no_link_fields() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            new_root(root_span!(tracing::Level::INFO, "lonely"))
                .link_to_ambient()
                .run(|| tracing::info!("no ambient"));
            let _request = tracing::info_span!("request").entered();
            new_root(root_span!(tracing::Level::INFO, "unlinked"))
                .run(|| tracing::info!("not asked"));
        });
        let lines = h.lines();
        assert_eq!(
            line_with(&lines, "no ambient")["span"],
            serde_json::json!({"name": "lonely"}),
            "{mode:?}"
        );
        assert_eq!(
            line_with(&lines, "not asked")["span"],
            serde_json::json!({"name": "unlinked"}),
            "{mode:?}"
        );
    }
}
