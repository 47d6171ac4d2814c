//! std threads and std channels: helpers carry the caller's context, bare
//! primitives lose it. Both id modes.

mod context_common;
mod support;

use std::time::Duration;

use context_common::{assert_carried, assert_lost, hex, hop, line_with, Finish, WorkerView};
use opentelemetry::trace::SpanId;
use support::{ids_of, Harness, Mode, MODES};
use tracing_correlation::context::mpsc;
use tracing_correlation::context::thread::{self, BuilderExt as _};
use tracing_correlation::TraceIds;

fn joined(handle: std::thread::JoinHandle<WorkerView>) -> Finish {
    Box::new(move || handle.join().expect("worker"))
}

#[test]
fn thread_spawn_carries_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| joined(thread::spawn(body)));
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_std_thread_spawn_loses_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| joined(std::thread::spawn(body)));
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn builder_spawn_in_context_carries_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            joined(
                std::thread::Builder::new()
                    .name("w".into())
                    .spawn_in_context(body)
                    .unwrap(),
            )
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn builder_spawn_scoped_in_context_carries_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let view = std::thread::scope(|s| {
                std::thread::Builder::new()
                    .spawn_scoped_in_context(s, body)
                    .unwrap()
                    .join()
                    .unwrap()
            });
            Box::new(move || view)
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn scope_spawn_carries_the_callers_context_and_nested_spawns_too() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let view = thread::scope(|s| {
                s.spawn(move || s.spawn(body).join().unwrap())
                    .join()
                    .unwrap()
            });
            Box::new(move || view)
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_std_scope_spawn_loses_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let view = std::thread::scope(|s| s.spawn(body).join().unwrap());
            Box::new(move || view)
        });
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn mpsc_message_handled_in_context_is_part_of_the_senders_trace() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, rx) = mpsc::channel::<fn() -> WorkerView>();
        // The receiver thread has no subscriber and no span of its own.
        let receiver = std::thread::spawn(move || rx.recv().unwrap().in_context(|body| body()));
        let (view, caller) = hop(&h, |body| {
            tx.send(body).unwrap();
            Box::new(move || receiver.join().unwrap())
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_mpsc_message_loses_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, rx) = std::sync::mpsc::channel::<fn() -> WorkerView>();
        let receiver = std::thread::spawn(move || (rx.recv().unwrap())());
        let (view, caller) = hop(&h, |body| {
            tx.send(body).unwrap();
            Box::new(move || receiver.join().unwrap())
        });
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn mpsc_message_handled_following_gets_a_new_span_linked_to_the_sender() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (tx, rx) = mpsc::sync_channel::<u32>(4);
        let (sender, consumer, consume) = h.run(|| {
            let sender = {
                let _request = tracing::info_span!("request").entered();
                tx.send(7).unwrap();
                TraceIds::current().unwrap()
            };
            let _consumer = tracing::info_span!(parent: None, "consumer").entered();
            let consumer = TraceIds::current().unwrap();
            let message = rx.recv().unwrap();
            let consume = message.following(tracing::info_span!("consume"), |job| {
                tracing::info!(job, "consuming");
                TraceIds::current().unwrap()
            });
            (sender, consumer, consume)
        });
        // The handler runs in the consumer's trace, as a child of its span.
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
            assert_eq!(links, [Some(sender)], "one link, to the sender's span");
            assert_ne!(exported.parent_span_id, SpanId::INVALID);
        }
    }
}

#[test]
fn sync_channel_keeps_its_backpressure() {
    let (tx, rx) = mpsc::sync_channel::<u32>(1);
    tx.send(1).unwrap();
    assert!(matches!(tx.try_send(2), Err(mpsc::TrySendError::Full(2))));
    let blocked = std::thread::spawn(move || tx.send(3));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !blocked.is_finished(),
        "send blocks while the channel is full"
    );
    assert_eq!(rx.recv().unwrap().into_inner(), 1);
    blocked.join().unwrap().unwrap();
    assert_eq!(rx.recv().unwrap().into_inner(), 3);
}
