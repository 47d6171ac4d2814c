//! rayon: join, scope/spawn, spawn and parallel iterators carry the caller's
//! context to pool threads; bare rayon loses it. Both id modes.
#![cfg(feature = "rayon")]

mod context_common;
mod support;

use std::sync::Mutex;

use context_common::{assert_carried, assert_lost, hex, hop, lines_with, Finish, WorkerView};
use rayon::prelude::*;
use support::{ids_of, Harness, MODES};
use tracing_correlation::context::rayon::{self as ctx_rayon, ParallelIteratorExt as _};
use tracing_correlation::TraceIds;

fn done(view: WorkerView) -> Finish {
    Box::new(move || view)
}

#[test]
fn join_runs_both_closures_in_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let (a, b) = ctx_rayon::join(TraceIds::current, body);
            assert_eq!(a, TraceIds::current());
            done(b)
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_rayon_join_loses_the_context_on_pool_threads() {
    for mode in MODES {
        let h = Harness::new(mode);
        // Called from outside the pool, both closures run on pool threads.
        let (view, caller) = hop(&h, |body| done(rayon::join(|| (), body).1));
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn spawn_runs_the_job_in_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let (tx, rx) = std::sync::mpsc::channel();
            ctx_rayon::spawn(move || tx.send(body()).unwrap());
            Box::new(move || rx.recv().unwrap())
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn scope_spawns_and_nested_spawns_run_in_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let view = Mutex::new(None);
            ctx_rayon::scope(|s| {
                s.spawn(|s| s.spawn(|_| *view.lock().unwrap() = Some(body())));
            });
            done(view.into_inner().unwrap().unwrap())
        });
        assert_carried(&h, &view, caller);
    }
}

#[test]
fn bare_rayon_scope_spawn_loses_the_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (view, caller) = hop(&h, |body| {
            let view = Mutex::new(None);
            rayon::scope(|s| s.spawn(|_| *view.lock().unwrap() = Some(body())));
            done(view.into_inner().unwrap().unwrap())
        });
        assert_lost(&h, &view, caller);
    }
}

#[test]
fn par_iter_in_current_context_runs_every_item_in_the_callers_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (seen, caller) = h.run(|| {
            let _caller = tracing::info_span!("caller").entered();
            let caller = TraceIds::current().unwrap();
            let seen: Vec<_> = (0..64u32)
                .into_par_iter()
                .in_current_context()
                .map(|i| {
                    tracing::info!(i, "item");
                    (TraceIds::current(), std::thread::current().id())
                })
                .collect();
            let sum = (0..64u32)
                .into_par_iter()
                .in_current_context()
                .map(|i| i * u32::from(TraceIds::current() == Some(caller)))
                .reduce(|| 0, |a, b| a + b);
            assert_eq!(
                sum,
                (0..64).sum::<u32>(),
                "{mode:?}: map and reduce in context"
            );
            assert_eq!(TraceIds::current(), Some(caller), "caller unchanged");
            (seen, caller)
        });
        assert!(seen.iter().all(|(ids, _)| *ids == Some(caller)), "{mode:?}");
        assert!(
            seen.iter()
                .all(|(_, thread)| *thread != std::thread::current().id()),
            "items ran on pool threads"
        );
        let lines = h.lines();
        let items = lines_with(&lines, "item");
        assert_eq!(items.len(), 64);
        for line in items {
            assert_eq!(ids_of(line), Some(hex(caller)), "{mode:?}");
        }
    }
}

#[test]
fn bare_par_iter_loses_the_context_on_pool_threads() {
    for mode in MODES {
        let h = Harness::new(mode);
        let seen: Vec<_> = h.run(|| {
            let _caller = tracing::info_span!("caller").entered();
            (0..64u32)
                .into_par_iter()
                .map(|_| TraceIds::current())
                .collect()
        });
        assert!(seen.iter().all(Option::is_none), "{mode:?}");
    }
}
