//! Error-triggered buffering, end to end through the builder's pipeline:
//! a failing request's DEBUG lines (from its own task, a spawned task, a
//! blocking task, a channel hop and the `log` crate) come out before its
//! ERROR line, in order, marked, with their own timestamps and ids; a
//! successful request's never do; requests never mix; the bounds hold and
//! every drop is counted.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::Captured;
use tracing::{Dispatch, Instrument as _, Level};
use tracing_correlation::{BufferConfig, LoggingGuard, TraceIds};

fn pipeline(config: BufferConfig) -> (Captured, Dispatch, LoggingGuard) {
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .span_filter("info")
        .buffer_until_error(config)
        .build()
        .expect("valid configuration");
    (out, dispatch, guard)
}

/// A multi-thread runtime whose workers (and blocking threads) have the
/// dispatcher as their default.
fn runtime(dispatch: &Dispatch) -> tokio::runtime::Runtime {
    let dispatch = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
        .unwrap()
}

/// `log` records reach the scoped dispatcher through the bridge.
fn install_log_bridge() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_correlation::LogBridge::new()
            .install()
            .expect("no other logger in this test binary");
    });
    tracing_correlation::LogBridge::sync_max_level();
}

fn messages(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("<none>"))
        .collect()
}

/// One request: four DEBUG lines from four places, an INFO, a `log`
/// DEBUG record, and (if `fail`) an ERROR. Returns the request's ids.
async fn request(n: u64, fail: bool) -> TraceIds {
    let span = tracing::info_span!("request", n);
    let ids_span = span.clone();
    async move {
        tracing::debug!(n, step = 1, "parsing");
        tracing_correlation::context::tokio::spawn(async move {
            tracing::debug!(n, step = 2, "in a spawned task");
        })
        .await
        .unwrap();
        tracing_correlation::context::tokio::spawn_blocking(move || {
            tracing::debug!(n, step = 3, "in a blocking task");
        })
        .await
        .unwrap();
        let (tx, mut rx) = tracing_correlation::context::tokio::mpsc::channel(1);
        let consumer = tokio::spawn(async move {
            // A plain task with no span: the message carries the context.
            let message = rx.recv().await.expect("one message");
            message.in_context(|n: u64| tracing::debug!(n, step = 4, "after a channel hop"));
        });
        tx.send(n).await.unwrap();
        consumer.await.unwrap();
        // Later than every line above, to the microsecond.
        tokio::time::sleep(Duration::from_millis(2)).await;
        tracing::info!(n, "written at once");
        log::debug!(n = n; "from the log crate");
        if fail {
            tracing::error!(n, "request failed");
        }
    }
    .instrument(span)
    .await;
    TraceIds::from_span(&ids_span).expect("entered request span")
}

fn timestamp(line: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        line["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

#[test]
fn a_failing_request_writes_its_debug_lines_first_in_order_with_their_own_timestamps_and_ids() {
    install_log_bridge();
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    install_log_bridge();
    let ids = runtime(&dispatch).block_on(async {
        let _default = tracing::dispatcher::set_default(&dispatch);
        request(1, true).await
    });
    let lines = out.lines();
    assert_eq!(
        messages(&lines),
        [
            "written at once",
            "parsing",
            "in a spawned task",
            "in a blocking task",
            "after a channel hop",
            "from the log crate",
            "request failed",
        ],
        "{lines:#?}"
    );
    let trace = ids.trace_id_hex();
    let span = ids.span_id_hex();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["trace_id"], trace.as_str(), "{line}");
        assert_eq!(line["span_id"], span.as_str(), "{line}");
        let buffered = (1..=5).contains(&i);
        assert_eq!(
            line.get("buffered"),
            buffered.then_some(&Value::Bool(true)),
            "{line}"
        );
        let level = match i {
            0 => "INFO",
            6 => "ERROR",
            _ => "DEBUG",
        };
        assert_eq!(line["level"], level, "{line}");
    }
    for (i, step) in [(1, 1), (2, 2), (3, 3), (4, 4)] {
        assert_eq!(lines[i]["step"], step);
    }
    assert_eq!(lines[5]["n"], 1, "the log record's key-value");
    // Original timestamps: each buffered line keeps the instant it was
    // logged, so the four written after the INFO line are older than it.
    for line in &lines[1..5] {
        assert!(timestamp(line) < timestamp(&lines[0]), "{line}");
    }
    assert!(timestamp(&lines[5]) >= timestamp(&lines[0]));
    assert!(timestamp(&lines[6]) >= timestamp(&lines[5]));
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!(
        (
            stats.buffered,
            stats.flushed,
            stats.triggered,
            stats.dropped
        ),
        (5, 5, 1, 0)
    );
    assert_eq!(
        (stats.traces, stats.held_lines),
        (0, 0),
        "the request ended"
    );
}

#[test]
fn a_successful_request_writes_none_and_its_buffer_goes_when_it_ends() {
    install_log_bridge();
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    install_log_bridge();
    runtime(&dispatch).block_on(async {
        let _default = tracing::dispatcher::set_default(&dispatch);
        request(2, false).await
    });
    let lines = out.lines();
    assert_eq!(messages(&lines), ["written at once"]);
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!(
        (stats.buffered, stats.flushed, stats.discarded, stats.traces),
        (5, 0, 5, 0)
    );
    // The vector went back to the pool: only its capacity stays charged
    // (1 KiB to start, doubled once for five lines of about 300 bytes).
    assert_eq!(stats.held_bytes, 2048);
}

#[test]
fn concurrent_requests_never_mix_their_buffers() {
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    let results = runtime(&dispatch).block_on(async {
        let _default = tracing::dispatcher::set_default(&dispatch);
        let mut tasks = Vec::new();
        for n in 0..40u64 {
            tasks.push(tracing_correlation::context::tokio::spawn(request(
                n,
                n % 3 == 0,
            )));
        }
        let mut ids = Vec::new();
        for (n, task) in tasks.into_iter().enumerate() {
            ids.push((n as u64, task.await.unwrap()));
        }
        ids
    });
    let lines = out.lines();
    for (n, ids) in &results {
        let trace = ids.trace_id_hex();
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|l| l["trace_id"] == trace.as_str())
            .collect();
        for line in &of_request {
            assert_eq!(line["n"], *n, "{line}");
        }
        let got = messages(&of_request.iter().map(|l| (*l).clone()).collect::<Vec<_>>())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        if n % 3 == 0 {
            // The INFO line may come before or after the buffered ones
            // only as logged: it is written at once, they at the error.
            assert_eq!(
                got,
                [
                    "written at once",
                    "parsing",
                    "in a spawned task",
                    "in a blocking task",
                    "after a channel hop",
                    "from the log crate",
                    "request failed",
                ],
                "request {n}"
            );
        } else {
            assert_eq!(got, ["written at once"], "request {n}");
        }
    }
    let failed = results.iter().filter(|(n, _)| n % 3 == 0).count() as u64;
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!(lines.len() as u64, 40 + failed * 6);
    // The `log` record is forwarded only when the bridge is this binary's
    // logger and the max level lets it through; count what was buffered.
    assert_eq!(stats.flushed + stats.discarded, stats.buffered);
    assert_eq!(stats.flushed, failed * 5);
    assert_eq!(stats.traces, 0);
}

/// The length of every line `bounded` writes for one DEBUG line.
fn line_len(dispatch: &Dispatch, out: &Captured) -> usize {
    tracing::dispatcher::with_default(dispatch, || {
        let _span = tracing::info_span!("request").entered();
        tracing::debug!(step = 100, "step");
        tracing::error!("calibrated");
    });
    let text = out.text();
    let first = text.lines().next().unwrap();
    assert!(first.contains("\"buffered\":true"), "{first}");
    first.len() + 1
}

#[test]
fn the_per_trace_bound_keeps_the_newest_lines_and_reports_the_drops_exactly() {
    // Calibrate with a roomy buffer, then bound at three lines.
    let (out, dispatch, _guard) = pipeline(BufferConfig::new(Level::DEBUG));
    let len = line_len(&dispatch, &out);
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG).per_trace_bytes(3 * len));
    let ids = tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        for step in 100..110 {
            tracing::debug!(step, "step");
        }
        tracing::error!("failed");
        TraceIds::from_span(&span).unwrap()
    });
    let lines = out.lines();
    assert_eq!(
        messages(&lines),
        [
            "7 buffered lines of this trace were dropped: its buffer was full",
            "step",
            "step",
            "step",
            "failed"
        ]
    );
    let report = &lines[0];
    assert_eq!(report["level"], "WARN");
    assert_eq!(report["target"], "tracing_correlation");
    assert_eq!(report["dropped_lines"], 7);
    assert_eq!(report["buffered"], true);
    assert_eq!(report["trace_id"], ids.trace_id_hex().as_str());
    assert_eq!(report["span_id"], ids.span_id_hex().as_str());
    let steps: Vec<&Value> = lines[1..4].iter().map(|l| &l["step"]).collect();
    assert_eq!(steps, [107, 108, 109], "the newest lines are kept");
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!((stats.buffered, stats.evicted, stats.flushed), (10, 7, 3));
}

#[test]
fn ten_thousand_open_requests_stay_within_the_total_bound_and_every_drop_is_counted() {
    const REQUESTS: usize = 10_000;
    const TOTAL: usize = 512 * 1024;
    let (out, dispatch, guard) = pipeline(
        BufferConfig::new(Level::DEBUG)
            .per_trace_bytes(4096)
            .total_bytes(TOTAL),
    );
    tracing::dispatcher::with_default(&dispatch, || {
        // Every request span open at once, each with a buffered line.
        let spans: Vec<tracing::Span> = (0..REQUESTS)
            .map(|n| {
                let span = tracing::info_span!("request", n);
                span.in_scope(|| tracing::debug!(n, "work"));
                span
            })
            .collect();
        let stats = guard.buffer_stats(0).unwrap();
        assert_eq!(stats.buffered + stats.dropped, REQUESTS as u64);
        assert!(stats.dropped > 0, "the bound was hit: {stats:?}");
        assert!(stats.max_held_bytes <= TOTAL as u64, "{stats:?}");
        // Then every request fails.
        for (n, span) in spans.iter().enumerate() {
            span.in_scope(|| tracing::error!(n, "failed"));
        }
        drop(spans);
    });
    let stats = guard.buffer_stats(0).unwrap();
    let lines = out.lines();
    let written = lines.iter().filter(|l| l["message"] == "work").count() as u64;
    let errors = lines.iter().filter(|l| l["message"] == "failed").count();
    assert_eq!(errors, REQUESTS);
    assert_eq!(written, stats.buffered, "every buffered line was written");
    assert_eq!(stats.flushed, stats.buffered);
    assert_eq!(stats.buffered + stats.dropped, REQUESTS as u64);
    assert!(stats.max_held_bytes <= TOTAL as u64, "{stats:?}");
    assert_eq!((stats.traces, stats.held_lines), (0, 0));
    // Each written line is its own request's, marked, right before its ERROR.
    for pair in lines.windows(2) {
        if pair[0]["message"] == "work" {
            assert_eq!(pair[0]["buffered"], true);
            assert_eq!(pair[1]["message"], "failed");
            assert_eq!(pair[0]["trace_id"], pair[1]["trace_id"]);
            assert_eq!(pair[0]["n"], pair[1]["n"]);
        }
    }
}

#[test]
fn lines_outside_requests_are_neither_buffered_nor_written() {
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::debug!("no span");
        tracing::error!("no span either");
    });
    assert_eq!(messages(&out.lines()), ["no span either"]);
    assert_eq!(guard.buffer_stats(0).unwrap().buffered, 0);
}

#[test]
fn trace_lines_are_captured_only_when_the_threshold_says_so() {
    for (level, expected) in [
        (Level::DEBUG, vec!["debug", "failed"]),
        (Level::TRACE, vec!["trace", "debug", "failed"]),
    ] {
        let (out, dispatch, _guard) = pipeline(BufferConfig::new(level));
        tracing::dispatcher::with_default(&dispatch, || {
            let _span = tracing::info_span!("request").entered();
            tracing::trace!("trace");
            tracing::debug!("debug");
            tracing::error!("failed");
        });
        assert_eq!(messages(&out.lines()), expected, "{level}");
    }
}

#[test]
fn after_a_failure_the_requests_captured_lines_are_written_at_once() {
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    tracing::dispatcher::with_default(&dispatch, || {
        let _span = tracing::info_span!("request").entered();
        tracing::error!("failed first");
        tracing::debug!("then more detail");
    });
    let lines = out.lines();
    assert_eq!(messages(&lines), ["failed first", "then more detail"]);
    assert_eq!(lines[1]["buffered"], true);
    assert_eq!(guard.buffer_stats(0).unwrap().passed_through, 1);
}

#[test]
fn shutdown_discards_the_buffers_of_requests_that_have_not_failed() {
    let (out, dispatch, guard) = pipeline(BufferConfig::new(Level::DEBUG));
    let open = tracing::dispatcher::with_default(&dispatch, || {
        let failed = tracing::info_span!("failed request");
        failed.in_scope(|| {
            tracing::debug!("kept, then written");
            tracing::error!("failed");
        });
        let open = tracing::info_span!("open request");
        open.in_scope(|| {
            tracing::debug!("still open at shutdown");
            tracing::debug!("also still open");
        });
        open
    });
    let report = guard.shutdown();
    assert_eq!(report.lost(), 0);
    assert_eq!(messages(&out.lines()), ["kept, then written", "failed"]);
    drop(open);
}
