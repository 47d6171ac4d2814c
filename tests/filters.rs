//! Which spans exist does not depend on which lines are written: at `warn`,
//! a warning inside an `info` span carries that span's ids. Each output
//! writes exactly what its own filter allows; filters reload at run time.

mod support;

use std::sync::{Arc, Barrier};

use support::{ids_of, Captured};
use tracing::{debug, error, info, info_span, warn};
use tracing_correlation::{builder, testing, Output, TraceIds};

/// What `ids_of` gives for a line carrying `ids`.
#[allow(clippy::unnecessary_wraps)]
fn ids_hex(ids: TraceIds) -> Option<(String, String, String)> {
    Some((
        ids.trace_id_hex().to_string(),
        ids.span_id_hex().to_string(),
        "03".to_owned(),
    ))
}

#[test]
fn at_warn_lines_inside_info_spans_carry_their_ids() {
    let out = Captured::default();
    let (dispatch, _guard) = builder()
        .writer(out.clone())
        .filter("warn")
        .build()
        .expect("valid filter");
    let (request_ids, job_ids) = tracing::dispatcher::with_default(&dispatch, || {
        let request = info_span!("request", method = "GET");
        let request_ids = request.in_scope(|| {
            info!("accepted (not written at warn)");
            warn!("slow backend");
            TraceIds::current()
        });
        let job = info_span!(parent: &request, "report_job");
        let job_ids = job.in_scope(|| {
            error!(code = 7, "report failed");
            TraceIds::current()
        });
        (request_ids, job_ids)
    });
    let request_ids = request_ids.expect("the info span exists at warn");
    let job_ids = job_ids.expect("its child too");
    assert_eq!(job_ids.trace_id(), request_ids.trace_id());

    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["message"], "slow backend");
    assert_eq!(ids_of(&lines[0]), ids_hex(request_ids));
    assert_eq!(lines[1]["message"], "report failed");
    assert_eq!(lines[1]["code"], 7);
    assert_eq!(ids_of(&lines[1]), ids_hex(job_ids));
}

#[test]
fn the_span_object_names_the_span_whose_ids_the_line_carries() {
    let ((), captured) =
        testing::capture_with(builder().filter("warn").span_filter("info"), || {
            let _request = info_span!("request", path = "/orders").entered();
            // A debug span below the span filter (info): the line belongs to
            // the nearest span that exists.
            let _detail = tracing::debug_span!("detail").entered();
            warn!("inside");
        });
    assert_eq!(captured.lines().len(), 1);
    assert_eq!(
        captured.line("inside")["span"],
        serde_json::json!({"name": "request", "path": "/orders"})
    );
    captured.assert_line_in_span("inside", "request");
    assert_eq!(captured.spans().len(), 1, "the debug span does not exist");
}

#[test]
fn a_span_filter_and_the_line_filter_both_make_spans_exist() {
    let ((), captured) = testing::capture_with(
        builder().filter("warn,app::db=debug").span_filter("warn"),
        || {
            // Below both filters: no ids (`is_disabled` is no test here:
            // other threads' dispatchers may enable the callsite).
            let request = info_span!("request");
            assert_eq!(TraceIds::from_span(&request), None);
            let _request = request.entered();
            let db = tracing::debug_span!(target: "app::db", "query");
            db.in_scope(|| debug!(target: "app::db", "rows read"));
        },
    );
    assert_eq!(captured.lines().len(), 1);
    assert_eq!(captured.spans().len(), 1, "only the debug span exists");
    captured.assert_line_in_span("rows read", "query");
    assert_eq!(captured.span("query").parent_span_id, None, "a root");
}

#[test]
fn the_capture_helper_sees_parents_and_remote_parents() {
    let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let ((), captured) = testing::capture(|| {
        let mut carrier = std::collections::HashMap::new();
        carrier.insert("traceparent".to_owned(), remote.to_owned());
        let parent = tracing_correlation::extract_context_with(
            &tracing_correlation::W3cPropagator::new(),
            &carrier,
        );
        let _attached = parent.attach();
        let _request = info_span!("request").entered();
        let _db = info_span!("db").entered();
        debug!("query");
    });
    let request = captured.span("request");
    assert_eq!(request.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(request.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    captured.assert_child_of("db", "request");
    captured.assert_line_in_span("query", "db");
}

#[test]
fn each_output_writes_exactly_what_its_filter_allows() {
    let stdout = Captured::default();
    let file = Captured::default();
    let (dispatch, guard) = builder()
        .writer(stdout.clone())
        .filter("warn")
        .output(Output::make_writer(file.clone()).filter("debug"))
        .build()
        .expect("valid filters");
    let ids = tracing::dispatcher::with_default(&dispatch, || {
        let _span = info_span!("request").entered();
        debug!("d");
        info!("i");
        warn!("w");
        error!("e");
        tracing::trace!("t");
        TraceIds::current().expect("ids")
    });
    let messages = |c: &Captured| -> Vec<String> {
        c.lines()
            .iter()
            .map(|l| {
                assert_eq!(ids_of(l), ids_hex(ids), "{l}");
                l["message"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(messages(&stdout), ["w", "e"]);
    assert_eq!(messages(&file), ["d", "i", "w", "e"]);
    let report = guard.report();
    assert_eq!(report.outputs.len(), 2);
    assert_eq!(report.outputs[0].written, 2);
    assert_eq!(report.outputs[1].written, 4);
}

#[test]
fn a_reload_takes_effect_on_every_thread() {
    const THREADS: usize = 4;
    let out = Captured::default();
    let (dispatch, guard) = builder()
        .writer(out.clone())
        .filter("warn")
        .build()
        .expect("valid filter");
    let handle = guard.filter_handle();
    let before = Arc::new(Barrier::new(THREADS + 1));
    let reloaded = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let dispatch = dispatch.clone();
            let (before, reloaded) = (before.clone(), reloaded.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    // The callsite's interest is cached before the reload.
                    for _ in 0..100 {
                        debug!(thread, "before");
                    }
                    before.wait();
                    reloaded.wait();
                    debug!(thread, "after");
                });
            })
        })
        .collect();
    before.wait();
    handle.reload("debug").expect("valid directives");
    assert!(handle.reload("app=notalevel").is_err());
    reloaded.wait();
    for worker in workers {
        worker.join().unwrap();
    }
    let lines = out.lines();
    let mut after: Vec<u64> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["message"], "after", "{l}");
            l["thread"].as_u64().unwrap()
        })
        .collect();
    after.sort_unstable();
    assert_eq!(after, (0..THREADS as u64).collect::<Vec<_>>());
}

#[test]
fn a_disabled_event_is_not_formatted() {
    use std::fmt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static FORMATTED: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl fmt::Debug for Counted {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            FORMATTED.fetch_add(1, Ordering::SeqCst);
            f.write_str("counted")
        }
    }
    let (dispatch, _guard) = builder()
        .writer(std::io::sink)
        .filter("warn")
        .build()
        .expect("valid filter");
    tracing::dispatcher::with_default(&dispatch, || {
        let _span = info_span!("request").entered();
        info!(value = ?Counted, "info");
        debug!(value = ?Counted, "debug");
        warn!(value = ?Counted, "warn");
    });
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 1);
}

#[test]
fn span_lifecycle_lines_are_opt_in_and_carry_the_span_s_own_ids() {
    let ((), plain) = testing::capture(|| {
        let _request = info_span!("request").entered();
    });
    assert!(plain.lines().is_empty(), "off by default");

    let ((), captured) = testing::capture_with(
        builder()
            .filter("info")
            .span_filter("info")
            .span_lines(tracing_correlation::SpanLines::ALL),
        || {
            let request = info_span!("request", method = "GET");
            request.in_scope(|| {
                let _db = tracing::debug_span!("db").entered(); // does not exist
                info!("handled");
            });
            drop(request);
        },
    );
    let messages: Vec<&str> = captured
        .lines()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["span opened", "handled", "span closed"]);
    let request = captured.span("request");
    for line in captured.lines() {
        assert_eq!(line["span_id"], request.span_id.as_str(), "{line}");
        assert_eq!(line["span"]["name"], "request");
    }
    let opened = &captured.lines()[0];
    assert_eq!(opened["target"], "tracing_correlation::span");
    assert_eq!(opened["level"], "INFO");
    assert_eq!(opened["span"]["method"], "GET");
    assert!(opened.get("span.duration_us").is_none());
    assert!(captured.lines()[2]["span.duration_us"].is_u64());
}

/// Span-scoped directives (`[request]=debug`): lines inside the named span
/// are written at its level, lines outside it are not. Filters without span
/// parts skip span bookkeeping, so this checks the switch both ways,
/// including a reload from plain directives to span-scoped ones and back.
#[test]
fn span_scoped_directives_apply_inside_the_span_and_across_reloads() {
    let out = Captured::default();
    let (dispatch, guard) = builder()
        .writer(out.clone())
        .filter("warn,[request]=debug")
        .build()
        .expect("valid filter");
    let filters = guard.filter_handle();
    tracing::dispatcher::with_default(&dispatch, || {
        debug!("outside 1");
        info_span!("request").in_scope(|| debug!("inside 1"));
        info_span!("other").in_scope(|| debug!("other 1"));

        filters.reload("warn").expect("valid");
        info_span!("request").in_scope(|| debug!("inside 2"));

        filters.reload("warn,[request]=debug").expect("valid");
        let request = info_span!("request");
        request.in_scope(|| {
            debug!("inside 3");
            info_span!("nested").in_scope(|| debug!("nested 3"));
        });
        debug!("outside 3");
    });
    let messages: Vec<_> = out
        .lines()
        .iter()
        .map(|line| line["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(messages, ["inside 1", "inside 3", "nested 3"]);
}
