//! Stress: 1,000 concurrent requests on a multi-thread runtime, each its own
//! trace, each hopping (seeded, random) through tokio spawn, spawn_blocking,
//! a std thread, a rayon job and a channel. With the helpers every line of a
//! request carries that request's trace id; without them (the negative
//! control, with the subscriber still reachable everywhere, as a global one
//! would be) lines lose or mix their ids — proving the check can fail.
#![cfg(all(feature = "tokio", feature = "rayon"))]

mod context_common;
mod support;

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::Value;
use support::{Harness, Mode, MODES};
use tokio::sync::oneshot;
use tracing::instrument::WithSubscriber as _;
use tracing::{Dispatch, Instrument as _};
use tracing_correlation::context::rayon::{self as ctx_rayon, ParallelIteratorExt as _};
use tracing_correlation::context::{thread as ctx_thread, tokio as ctx_tokio};
use tracing_correlation::{new_root, FutureContextExt as _};

const REQUESTS: u32 = 1_000;
const HOPS: usize = 10;
const RAYON_ITEMS: u32 = 4;

#[derive(Clone, Copy, Debug)]
enum Hop {
    Spawn,
    Blocking,
    Thread,
    Rayon,
    Channel,
}

impl Hop {
    fn lines(self) -> usize {
        match self {
            Hop::Spawn => 2,
            Hop::Rayon => RAYON_ITEMS as usize,
            Hop::Blocking | Hop::Thread | Hop::Channel => 1,
        }
    }
}

/// Seeded per request: the same hops on every run.
fn hops(request: u32) -> Vec<Hop> {
    let mut state =
        0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(request).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..HOPS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            [
                Hop::Spawn,
                Hop::Blocking,
                Hop::Thread,
                Hop::Rayon,
                Hop::Channel,
            ][(state % 5) as usize]
        })
        .collect()
}

type ChannelJob = (u32, usize, oneshot::Sender<()>);

/// How the stress reaches other threads: with the helpers, or bare (the
/// subscriber still set everywhere, as a global one would be).
#[derive(Clone)]
enum Via {
    Helpers(ctx_tokio::mpsc::Sender<ChannelJob>),
    Bare(Dispatch, tokio::sync::mpsc::Sender<ChannelJob>),
}

impl Via {
    fn rayon_items(req: u32, hop: usize) {
        tracing::info!(req, hop, "rayon hop");
    }

    async fn hop(&self, req: u32, hop: usize, kind: Hop) {
        match (self, kind) {
            (Via::Helpers(_), Hop::Spawn) => ctx_tokio::spawn(spawned(req, hop)).await.unwrap(),
            (Via::Bare(d, _), Hop::Spawn) => {
                tokio::spawn(spawned(req, hop).with_subscriber(d.clone()))
                    .await
                    .unwrap();
            }
            (Via::Helpers(_), Hop::Blocking) => {
                ctx_tokio::spawn_blocking(move || tracing::info!(req, hop, "blocking hop"))
                    .await
                    .unwrap();
            }
            (Via::Bare(d, _), Hop::Blocking) => {
                let d = d.clone();
                tokio::task::spawn_blocking(move || {
                    tracing::dispatcher::with_default(&d, || {
                        tracing::info!(req, hop, "blocking hop");
                    });
                })
                .await
                .unwrap();
            }
            (Via::Helpers(_), Hop::Thread) => {
                let (tx, rx) = oneshot::channel();
                ctx_thread::spawn(move || {
                    tracing::info!(req, hop, "thread hop");
                    tx.send(())
                });
                rx.await.unwrap();
            }
            (Via::Bare(d, _), Hop::Thread) => {
                let (tx, rx) = oneshot::channel();
                let d = d.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        tracing::info!(req, hop, "thread hop");
                    });
                    tx.send(())
                });
                rx.await.unwrap();
            }
            (Via::Helpers(_), Hop::Rayon) => {
                let (tx, rx) = oneshot::channel();
                ctx_rayon::spawn(move || {
                    (0..RAYON_ITEMS)
                        .into_par_iter()
                        .in_current_context()
                        .for_each(|_| Self::rayon_items(req, hop));
                    tx.send(()).ok();
                });
                rx.await.unwrap();
            }
            (Via::Bare(d, _), Hop::Rayon) => {
                let (tx, rx) = oneshot::channel();
                let d = d.clone();
                rayon::spawn(move || {
                    (0..RAYON_ITEMS).into_par_iter().for_each(|_| {
                        tracing::dispatcher::with_default(&d, || Self::rayon_items(req, hop));
                    });
                    tx.send(()).ok();
                });
                rx.await.unwrap();
            }
            (Via::Helpers(queue), Hop::Channel) => {
                let (tx, rx) = oneshot::channel();
                queue.send((req, hop, tx)).await.unwrap();
                rx.await.unwrap();
            }
            (Via::Bare(_, queue), Hop::Channel) => {
                let (tx, rx) = oneshot::channel();
                queue.send((req, hop, tx)).await.unwrap();
                rx.await.unwrap();
            }
        }
    }
}

async fn spawned(req: u32, hop: usize) {
    tracing::info!(req, hop, "spawn hop");
    tokio::task::yield_now().await;
    tracing::info!(req, hop, "spawn hop resumed");
}

async fn request(via: Via, req: u32) {
    tracing::info!(req, "start");
    for (hop, kind) in hops(req).into_iter().enumerate() {
        via.hop(req, hop, kind)
            .instrument(tracing::info_span!("hop", hop))
            .await;
    }
    tracing::info!(req, "end");
}

#[derive(Debug, Default)]
struct Report {
    lines: usize,
    expected: usize,
    missing_ids: usize,
    mismatched: usize,
    requests_without_start_ids: usize,
}

fn check(lines: &[Value]) -> Report {
    let mut by_request: HashMap<u64, Vec<&Value>> = HashMap::new();
    for line in lines {
        if let Some(req) = line["req"].as_u64() {
            by_request.entry(req).or_default().push(line);
        }
    }
    let mut report = Report {
        lines: lines.len(),
        expected: (0..REQUESTS)
            .map(|r| 2 + hops(r).iter().map(|h| h.lines()).sum::<usize>())
            .sum(),
        ..Report::default()
    };
    for req_lines in by_request.values() {
        let start = req_lines
            .iter()
            .find(|l| l["message"] == "start")
            .and_then(|l| l["trace_id"].as_str());
        let Some(trace) = start else {
            report.requests_without_start_ids += 1;
            continue;
        };
        for line in req_lines {
            match line["trace_id"].as_str() {
                None => report.missing_ids += 1,
                Some(t) if t != trace => report.mismatched += 1,
                Some(_) => {}
            }
        }
    }
    report
}

fn stress(mode: Mode, helpers: bool) -> (Report, std::time::Duration) {
    let h = Harness::new(mode);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    h.run(|| {
        let via = if helpers {
            let (tx, mut rx) = ctx_tokio::mpsc::channel::<ChannelJob>(64);
            rt.spawn(async move {
                while let Some(message) = rx.recv().await {
                    message.in_context(|(req, hop, reply)| {
                        tracing::info!(req, hop, "channel hop");
                        reply.send(()).ok();
                    });
                }
            });
            Via::Helpers(tx)
        } else {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<ChannelJob>(64);
            rt.spawn(
                async move {
                    while let Some((req, hop, reply)) = rx.recv().await {
                        tracing::info!(req, hop, "channel hop");
                        reply.send(()).ok();
                    }
                }
                .with_subscriber(h.dispatch.clone()),
            );
            Via::Bare(h.dispatch.clone(), tx)
        };
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|req| {
                let span = tracing::info_span!(parent: None, "request", req);
                let work = request(via.clone(), req);
                if helpers {
                    rt.spawn(work.in_context(new_root(span).capture()))
                } else {
                    rt.spawn(work.instrument(span).with_subscriber(h.dispatch.clone()))
                }
            })
            .collect();
        drop(via);
        rt.block_on(async {
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    let elapsed = started.elapsed();
    (check(&h.lines()), elapsed)
}

#[test]
fn stress_every_line_of_every_request_carries_its_own_trace_id() {
    for mode in MODES {
        let (report, elapsed) = stress(mode, true);
        eprintln!("{mode:?} with helpers: {report:?} in {elapsed:?}");
        assert_eq!(
            report.lines, report.expected,
            "{mode:?}: every line was written"
        );
        assert_eq!(report.requests_without_start_ids, 0, "{mode:?}");
        assert_eq!(report.missing_ids, 0, "{mode:?}: lines without ids");
        assert_eq!(
            report.mismatched, 0,
            "{mode:?}: lines with another request's trace"
        );
    }
}

#[test]
fn negative_control_without_the_helpers_lines_lose_their_trace() {
    for mode in MODES {
        let (report, elapsed) = stress(mode, false);
        eprintln!("{mode:?} bare: {report:?} in {elapsed:?}");
        assert_eq!(
            report.lines, report.expected,
            "{mode:?}: every line was written"
        );
        assert!(
            report.missing_ids + report.mismatched > 0,
            "{mode:?}: the check can fail"
        );
        // Only the lines logged in each request's own task (start, end) keep
        // their trace; every line logged across a hop lost its ids, or —
        // when a rayon thread blocked inside a helper-wrapped job of the
        // other stress test ran a bare job (work stealing) — got another
        // request's trace.
        assert_eq!(
            report.missing_ids + report.mismatched,
            report.expected - 2 * REQUESTS as usize,
            "{mode:?}"
        );
    }
}
