//! tokio: spawn helpers and JoinSet carry the caller's context, bare spawns
//! lose it; context is kept across `.await` and async waits without leaking
//! between tasks; tokio mpsc messages carry their sender's context.
#![cfg(feature = "tokio")]

mod context_common;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use context_common::{assert_carried, assert_lost, hex, hop, line_with, Finish, WorkerView};
use support::{ids_of, Harness, Mode, MODES};
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet, LocalSet};
use tracing::Instrument as _;
use tracing_correlation::context::tokio::{self as ctx_tokio, mpsc, JoinSetExt as _};
use tracing_correlation::{new_root, root_span, FutureContextExt as _, TraceIds};

fn runtime() -> Arc<Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

fn awaited(rt: &Arc<Runtime>, handle: JoinHandle<WorkerView>) -> Finish {
    let rt = rt.clone();
    Box::new(move || rt.block_on(handle).expect("task"))
}

#[test]
fn spawn_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let _rt = rt.enter();
            awaited(&rt, ctx_tokio::spawn(async move { body() }))
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_tokio_spawn_loses_the_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let _rt = rt.enter();
            awaited(&rt, tokio::spawn(async move { body() }))
        });
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn spawn_blocking_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let _rt = rt.enter();
            awaited(&rt, ctx_tokio::spawn_blocking(body))
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_spawn_blocking_loses_the_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let _rt = rt.enter();
            awaited(&rt, tokio::task::spawn_blocking(body))
        });
        assert_lost(&h, &view, caller);
    }
}

/// Spawns inside a `LocalSet` while in the caller's context; the local task
/// only runs after the caller's context was left.
fn local_hop(rt: &Arc<Runtime>, spawn: impl FnOnce() -> JoinHandle<WorkerView>) -> Finish {
    let local = LocalSet::new();
    let handle = local.enter_and(spawn);
    let rt = rt.clone();
    Box::new(move || local.block_on(&rt, handle).expect("local task"))
}

trait EnterAnd {
    fn enter_and<R>(&self, f: impl FnOnce() -> R) -> R;
}
impl EnterAnd for LocalSet {
    fn enter_and<R>(&self, f: impl FnOnce() -> R) -> R {
        let _local = self.enter();
        f()
    }
}

#[test]
fn spawn_local_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            local_hop(&rt, || ctx_tokio::spawn_local(async move { body() }))
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_spawn_local_loses_the_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            local_hop(&rt, || tokio::task::spawn_local(async move { body() }))
        });
        // The local task runs on this thread, inside the harness subscriber,
        // but after the caller's span was left: no trace.
        assert_eq!(view.current, None, "{mode:?}");
        assert_eq!(view.tenant, None);
        assert_ne!(view.child.map(|c| c.trace_id()), Some(caller.trace_id()));
    }
}

fn joinset_hop(rt: &Arc<Runtime>, spawn: impl FnOnce(&mut JoinSet<WorkerView>)) -> Finish {
    let _rt = rt.enter();
    let mut set = JoinSet::new();
    spawn(&mut set);
    let rt = rt.clone();
    Box::new(move || {
        rt.block_on(set.join_next())
            .expect("one task")
            .expect("task")
    })
}

#[test]
fn joinset_spawn_in_context_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            joinset_hop(&rt, |set| {
                set.spawn_in_context(async move { body() });
            })
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn joinset_spawn_blocking_in_context_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            joinset_hop(&rt, |set| {
                set.spawn_blocking_in_context(body);
            })
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_joinset_spawn_loses_the_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            joinset_hop(&rt, |set| {
                set.spawn(async move { body() });
            })
        });
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn joinset_spawn_local_in_context_carries_the_callers_context() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let local = LocalSet::new();
            let mut set = JoinSet::new();
            local.enter_and(|| set.spawn_local_in_context(async move { body() }));
            let rt = rt.clone();
            Box::new(move || {
                local
                    .block_on(&rt, set.join_next())
                    .expect("one task")
                    .expect("task")
            })
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn tokio_mpsc_message_handled_in_context_is_part_of_the_senders_trace() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, mut rx) = mpsc::channel::<fn() -> WorkerView>(1);
        let consumer = rt.spawn(async move {
            let (body, context) = rx.recv().await.expect("a message").into_parts();
            async move { body() }.in_context(context).await
        });
        let (view, caller) = hop(&h, |body| {
            tx.try_send(body).unwrap();
            awaited(&rt, consumer)
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn tokio_unbounded_message_handled_in_context_is_part_of_the_senders_trace() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, mut rx) = mpsc::unbounded_channel::<fn() -> WorkerView>();
        let consumer = rt.spawn(async move {
            rx.recv()
                .await
                .expect("a message")
                .in_context(|body| body())
        });
        let (view, caller) = hop(&h, |body| {
            tx.send(body).unwrap();
            awaited(&rt, consumer)
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn tokio_mpsc_message_handled_following_gets_a_linked_span_in_the_consumers_trace() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        let (sender, consumer, consume) = h.run(|| {
            let sender = tracing::info_span!("request").in_scope(|| {
                tx.try_send(7).unwrap();
                TraceIds::current().unwrap()
            });
            let consumer_span = tracing::info_span!(parent: None, "consumer");
            let consumer = consumer_span.in_scope(|| TraceIds::current().unwrap());
            let consume = rt.block_on(
                async move {
                    let message = rx.recv().await.expect("a message");
                    let span = tracing::info_span!("consume");
                    message.link(&span);
                    let job = message.into_inner();
                    async move {
                        tracing::info!(job, "consuming");
                        TraceIds::current().unwrap()
                    }
                    .instrument(span)
                    .await
                }
                .instrument(consumer_span),
            );
            (sender, consumer, consume)
        });
        assert_eq!(consume.trace_id(), consumer.trace_id(), "{mode:?}");
        assert_ne!(consume.trace_id(), sender.trace_id(), "{mode:?}");
        assert_eq!(
            ids_of(line_with(&h.lines(), "consuming")),
            Some(hex(consume))
        );
        if mode == Mode::Otel {
            let exported = h.exported("consume");
            assert_eq!(exported.parent_span_id, consumer.span_id());
            let links: Vec<_> = exported
                .links
                .iter()
                .map(|l| TraceIds::from_span_context(&l.span_context))
                .collect();
            assert_eq!(links, [Some(sender)]);
        }
    }
}

#[test]
fn tokio_bounded_channel_keeps_its_backpressure() {
    let rt = runtime();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.send(1).await.unwrap();
        assert!(matches!(tx.try_send(2), Err(mpsc::TrySendError::Full(2))));
        let full = tokio::time::timeout(Duration::from_millis(10), tx.send(3)).await;
        assert!(full.is_err(), "send waits while the channel is full");
        assert_eq!(rx.recv().await.unwrap().into_inner(), 1);
        tx.send(4).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().into_inner(), 4);
    });
}

/// Spawns `tasks` tasks, each the root of its own trace, running `wait`
/// between a line before and a line after; returns each task's ids as seen
/// before and after the wait, and checks every line of every task carries
/// that task's ids.
fn waiters<W, Fut>(mode: Mode, tasks: u32, wait: W, release: impl FnOnce(&Arc<Runtime>))
where
    W: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = runtime();
    let h = Harness::new(mode);
    let wait = Arc::new(wait);
    let handles: Vec<_> = h.run(|| {
        (0..tasks)
            .map(|task| {
                let wait = wait.clone();
                let root = new_root(tracing::info_span!(parent: None, "task", task)).capture();
                rt.spawn(
                    async move {
                        let before = TraceIds::current();
                        tracing::info!(task, "waiting");
                        wait(task).await;
                        tracing::info!(task, "resumed");
                        tokio::task::yield_now().await;
                        tracing::info!(task, "done");
                        (before, TraceIds::current())
                    }
                    .in_context(root),
                )
            })
            .collect()
    });
    release(&rt);
    let mut ids = HashMap::new();
    for (task, handle) in (0..tasks).zip(handles) {
        let (before, after) = rt.block_on(handle).unwrap();
        assert!(before.is_some(), "{mode:?}");
        assert_eq!(
            before, after,
            "{mode:?}: task {task} resumed in another context"
        );
        ids.insert(task, before.unwrap());
    }
    let distinct: std::collections::HashSet<_> = ids.values().map(TraceIds::trace_id).collect();
    assert_eq!(distinct.len(), tasks as usize, "each task its own trace");
    let lines = h.lines();
    assert_eq!(lines.len(), 3 * tasks as usize, "{mode:?}");
    for line in &lines {
        let task = u32::try_from(line["task"].as_u64().unwrap()).unwrap();
        assert_eq!(ids_of(line), Some(hex(ids[&task])), "{mode:?}: {line}");
    }
}

#[test]
fn tasks_waiting_on_an_async_mutex_resume_in_their_own_context() {
    for mode in MODES {
        let mutex = Arc::new(tokio::sync::Mutex::new(()));
        let held = mutex.clone().try_lock_owned().unwrap();
        let m = mutex.clone();
        waiters(
            mode,
            16,
            move |_| {
                let m = m.clone();
                async move {
                    let _guard = m.lock().await;
                    tokio::task::yield_now().await;
                }
            },
            move |_| {
                std::thread::sleep(Duration::from_millis(20));
                drop(held);
            },
        );
    }
}

#[test]
fn tasks_waiting_on_a_semaphore_resume_in_their_own_context() {
    for mode in MODES {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(0));
        let s = semaphore.clone();
        waiters(
            mode,
            16,
            move |_| {
                let s = s.clone();
                async move {
                    let _permit = s.acquire().await.unwrap();
                    tokio::task::yield_now().await;
                }
            },
            move |_| {
                std::thread::sleep(Duration::from_millis(20));
                semaphore.add_permits(2);
            },
        );
    }
}

#[test]
fn tasks_waiting_on_notify_resume_in_their_own_context() {
    for mode in MODES {
        let notify = Arc::new(tokio::sync::Notify::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let n = notify.clone();
        waiters(
            mode,
            16,
            move |_| {
                let n = n.clone();
                let ready = ready_tx.clone();
                async move {
                    let notified = n.notified();
                    let mut notified = std::pin::pin!(notified);
                    notified.as_mut().enable();
                    ready.send(()).unwrap();
                    notified.await;
                }
            },
            move |_| {
                for _ in 0..16 {
                    ready_rx.recv().unwrap();
                }
                notify.notify_waiters();
            },
        );
    }
}

#[test]
fn tasks_waiting_on_mpsc_recv_resume_in_their_own_context() {
    for mode in MODES {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..16).map(|_| tokio::sync::mpsc::channel::<()>(1)).unzip();
        let receivers: Vec<_> = receivers
            .into_iter()
            .map(|r| Arc::new(tokio::sync::Mutex::new(r)))
            .collect();
        waiters(
            mode,
            16,
            move |task| {
                let rx = receivers[task as usize].clone();
                async move {
                    rx.lock().await.recv().await.unwrap();
                }
            },
            move |_| {
                std::thread::sleep(Duration::from_millis(20));
                for tx in senders.iter().rev() {
                    tx.try_send(()).unwrap();
                }
            },
        );
    }
}

#[test]
fn await_inside_an_instrumented_future_keeps_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let rt = runtime();
        let (ids, seen) = h.run(|| {
            let span = tracing::info_span!("request");
            let root = new_root(span).capture();
            rt.block_on(
                async {
                    let ids = TraceIds::current();
                    let mut seen = Vec::new();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    seen.push(TraceIds::current());
                    tokio::task::yield_now().await;
                    seen.push(TraceIds::current());
                    // Futures joined inside the task are polled inside its poll.
                    let (a, b) = tokio::join!(
                        async {
                            tokio::task::yield_now().await;
                            TraceIds::current()
                        },
                        async { TraceIds::current() }
                    );
                    seen.extend([a, b]);
                    seen.push(tokio::task::block_in_place(TraceIds::current));
                    (ids, seen)
                }
                .in_context(root),
            )
        });
        assert!(ids.is_some());
        assert_eq!(seen, vec![ids; 5], "{mode:?}");
    }
}

#[test]
#[allow(clippy::many_single_char_names)]
fn a_span_guard_held_across_await_leaks_into_other_tasks_and_in_context_does_not() {
    for mode in MODES {
        let h = Harness::new(mode);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (leaked, clean, a_ids) = h.run(|| {
            let local = LocalSet::new();
            local.block_on(&rt, async {
                // The anti-pattern: `span.enter()` kept across `.await`.
                let a = tokio::task::spawn_local(async {
                    let span = tracing::info_span!(parent: None, "a");
                    let _guard = span.enter();
                    let ids = TraceIds::current();
                    tokio::task::yield_now().await;
                    ids
                });
                let b = tokio::task::spawn_local(async { TraceIds::current() });
                let leaked = b.await.unwrap();
                let a_ids = a.await.unwrap();
                // The fix: the context is entered only while the task polls.
                let root = new_root(tracing::info_span!(parent: None, "c")).capture();
                let c = tokio::task::spawn_local(
                    async { tokio::task::yield_now().await }.in_context(root),
                );
                let d = tokio::task::spawn_local(async { TraceIds::current() });
                let clean = d.await.unwrap();
                c.await.unwrap();
                (leaked, clean, a_ids)
            })
        });
        assert!(a_ids.is_some());
        assert_eq!(leaked, a_ids, "{mode:?}: b ran inside a's span");
        assert_eq!(clean, None, "{mode:?}");
    }
}

/// What a job spawned as a new root saw and logged.
fn assert_new_root_job(h: &Harness, job: Option<TraceIds>, request: TraceIds, message: &str) {
    let mode = h.mode;
    let job = job.expect("the job has ids");
    assert_ne!(
        job.trace_id(),
        request.trace_id(),
        "{mode:?}: a fresh trace"
    );
    let line = line_with(&h.lines(), message).clone();
    assert_eq!(
        line["trace_id"].as_str(),
        Some(&*job.trace_id_hex()),
        "{mode:?}"
    );
    assert_eq!(
        line["span_id"].as_str(),
        Some(&*job.span_id_hex()),
        "{mode:?}"
    );
    assert_eq!(
        line["span"]["link.trace_id"].as_str(),
        Some(&*request.trace_id_hex()),
        "{mode:?}"
    );
    assert_eq!(
        line["span"]["link.span_id"].as_str(),
        Some(&*request.span_id_hex()),
        "{mode:?}"
    );
    if mode == Mode::Otel {
        let exported = h.exported("job");
        assert_eq!(
            exported.parent_span_id,
            opentelemetry::trace::SpanId::INVALID
        );
        assert_eq!(exported.span_context.span_id(), job.span_id());
        let links: Vec<_> = exported
            .links
            .iter()
            .map(|link| TraceIds::from_span_context(&link.span_context))
            .collect();
        assert_eq!(links, [Some(request)], "{mode:?}: one link, to the request");
    }
}

#[test]
fn new_root_spawn_runs_the_task_as_a_fresh_trace_linked_to_the_caller() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (job, request) = h.run(|| {
            let _rt = rt.enter();
            let _request = tracing::info_span!("request").entered();
            let request = TraceIds::current().unwrap();
            let handle = new_root(root_span!(tracing::Level::INFO, "job"))
                .link_to_ambient()
                .spawn(async {
                    tokio::task::yield_now().await;
                    tracing::info!("job ran");
                    TraceIds::current()
                });
            (rt.block_on(handle).expect("task"), request)
        });
        assert_new_root_job(&h, job, request, "job ran");
    }
}

#[test]
fn in_new_root_runs_a_future_as_a_fresh_trace_linked_to_the_caller() {
    let rt = runtime();
    for mode in MODES {
        let h = Harness::new(mode);
        let (job, request) = h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let request = TraceIds::current().unwrap();
            let future = async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tracing::info!("job ran");
                TraceIds::current()
            }
            .in_new_root(new_root(root_span!(tracing::Level::INFO, "job")).link_to_ambient());
            // Bare `tokio::spawn`: the wrapper alone carries the new root.
            (rt.block_on(rt.spawn(future)).expect("task"), request)
        });
        assert_new_root_job(&h, job, request, "job ran");
    }
}
