//! One contract, two id sources: every test here runs stand-alone (ids minted
//! by the correlation layer) and with the OpenTelemetry SDK (ids exported).

mod support;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::Value;
use support::{ids_of, Harness, Mode, MODES};
use tracing_correlation::TraceIds;

fn hex(ids: TraceIds) -> (String, String, String) {
    (
        ids.trace_id_hex().to_string(),
        ids.span_id_hex().to_string(),
        ids.trace_flags_hex().to_string(),
    )
}

fn remote(trace: u128, span: u64, flags: u8) -> opentelemetry::Context {
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        true,
        TraceState::NONE,
    ))
}

fn line_with<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
}

#[test]
fn child_spans_inherit_the_trace_and_lines_carry_the_innermost_span() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (outer_ids, inner_ids) = h.run(|| {
            let outer = tracing::info_span!("outer");
            let _o = outer.enter();
            tracing::info!("in outer");
            let inner = tracing::info_span!("inner", user = "ada");
            let _i = inner.enter();
            tracing::info!(n = 1, "in inner");
            (
                TraceIds::from_span(&outer).unwrap(),
                TraceIds::from_span(&inner).unwrap(),
            )
        });
        assert_eq!(outer_ids.trace_id(), inner_ids.trace_id(), "{mode:?}");
        assert_ne!(outer_ids.span_id(), inner_ids.span_id(), "{mode:?}");
        let lines = h.lines();
        assert_eq!(ids_of(line_with(&lines, "in outer")), Some(hex(outer_ids)));
        let inner_line = line_with(&lines, "in inner");
        assert_eq!(ids_of(inner_line), Some(hex(inner_ids)), "{mode:?}");
        assert_eq!(inner_line["span"]["name"], "inner");
        assert_eq!(inner_line["span"]["user"], "ada");
        assert_eq!(inner_line["n"], 1);

        if mode == Mode::Otel {
            // The ids on the lines are the exported spans' ids.
            let outer = h.exported("outer");
            let inner = h.exported("inner");
            assert_eq!(
                TraceIds::from_span_context(&outer.span_context),
                Some(outer_ids)
            );
            assert_eq!(
                TraceIds::from_span_context(&inner.span_context),
                Some(inner_ids)
            );
            assert_eq!(inner.parent_span_id, outer_ids.span_id());
            assert_eq!(outer.parent_span_id, SpanId::INVALID);
        }
    }
}

#[test]
fn an_event_with_an_explicit_parent_gets_that_spans_ids() {
    for mode in MODES {
        let h = Harness::new(mode);
        let (a_ids, b_ids) = h.run(|| {
            let a = tracing::info_span!("a");
            let a_ids = a.in_scope(|| TraceIds::current().unwrap());
            let b = tracing::info_span!(parent: None, "b");
            let _b = b.enter();
            tracing::info!(parent: &a, "to a");
            tracing::info!("to b");
            (a_ids, TraceIds::from_span(&b).unwrap())
        });
        assert_ne!(
            a_ids.trace_id(),
            b_ids.trace_id(),
            "{mode:?}: b is a new root"
        );
        let lines = h.lines();
        let to_a = line_with(&lines, "to a");
        assert_eq!(ids_of(to_a), Some(hex(a_ids)), "{mode:?}");
        assert_eq!(to_a["span"]["name"], "a");
        assert_eq!(ids_of(line_with(&lines, "to b")), Some(hex(b_ids)));
    }
}

#[test]
fn events_outside_any_span_carry_no_trace_keys() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            tracing::info!("alone");
            let span = tracing::info_span!("s");
            span.in_scope(|| {});
            tracing::info!(parent: None, "explicit root event");
            tracing::info!("after");
        });
        let lines = h.lines();
        for message in ["alone", "explicit root event", "after"] {
            let line = line_with(&lines, message);
            assert_eq!(ids_of(line), None, "{mode:?}: {line}");
            assert!(line.get("span").is_none());
        }
    }
}

#[test]
fn a_remote_parent_attached_as_context_becomes_the_parent_of_the_next_span() {
    for flags in [0x01, 0x00] {
        for mode in MODES {
            let h = Harness::new(mode);
            let parent = remote(
                0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                0x00f0_67aa_0ba9_02b7,
                flags,
            );
            let (span_ids, child_ids) = h.run(|| {
                let _remote = parent.clone().attach();
                let span = tracing::info_span!("server");
                let _s = span.enter();
                tracing::info!("handling");
                let child = tracing::info_span!("child");
                let child_ids = child.in_scope(|| {
                    tracing::info!("in child");
                    TraceIds::current().unwrap()
                });
                (TraceIds::from_span(&span).unwrap(), child_ids)
            });
            assert_eq!(
                span_ids.trace_id(),
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                "{mode:?}"
            );
            assert_ne!(span_ids.span_id(), SpanId::from(0x00f0_67aa_0ba9_02b7));
            // The sampled flag is inherited, down the whole tree.
            assert_eq!(span_ids.trace_flags(), TraceFlags::new(flags), "{mode:?}");
            assert_eq!(child_ids.trace_flags(), TraceFlags::new(flags), "{mode:?}");
            assert_eq!(child_ids.trace_id(), span_ids.trace_id());
            let lines = h.lines();
            assert_eq!(ids_of(line_with(&lines, "handling")), Some(hex(span_ids)));
            assert_eq!(ids_of(line_with(&lines, "in child")), Some(hex(child_ids)));
            assert_eq!(
                line_with(&lines, "in child")["trace_flags"],
                if flags == 1 { "01" } else { "00" }
            );
            if mode == Mode::Otel {
                if flags == 1 {
                    let server = h.exported("server");
                    assert_eq!(server.parent_span_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
                    assert!(server.parent_span_is_remote);
                    assert_eq!(h.exported("child").parent_span_id, span_ids.span_id());
                } else {
                    // Parent-based sampling: nothing of an unsampled trace is exported.
                    assert!(h
                        .exporter
                        .as_ref()
                        .unwrap()
                        .get_finished_spans()
                        .unwrap()
                        .is_empty());
                }
            }
        }
    }
}

#[test]
fn context_current_follows_the_entered_span_and_is_restored_on_exit() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            assert_eq!(TraceIds::current(), None);
            let a = tracing::info_span!("a");
            let a_guard = a.enter();
            let a_ids = TraceIds::current().unwrap();
            let b = tracing::info_span!("b");
            let b_guard = b.enter();
            let b_ids = TraceIds::current().unwrap();
            assert_eq!(Some(b_ids), TraceIds::from_span(&b), "{mode:?}");
            assert_eq!(b_ids.trace_id(), a_ids.trace_id());
            drop(b_guard);
            assert_eq!(TraceIds::current(), Some(a_ids), "{mode:?}");
            drop(a_guard);
            assert_eq!(TraceIds::current(), None, "{mode:?}");
        });
    }
}

#[test]
fn each_enter_attaches_its_own_spans_context_whatever_was_created_last() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let a = tracing::info_span!("a");
            let b = tracing::info_span!("b");
            // `b` was created last; `a` is entered first.
            let a_guard = a.enter();
            assert_eq!(TraceIds::current(), TraceIds::from_span(&a), "{mode:?}");
            drop(a_guard);
            let b_guard = b.enter();
            assert_eq!(TraceIds::current(), TraceIds::from_span(&b), "{mode:?}");
            drop(b_guard);
            // Entered again, and on another thread than the one that
            // created it.
            let _again = a.enter();
            assert_eq!(TraceIds::current(), TraceIds::from_span(&a), "{mode:?}");
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            let created_here = tracing::info_span!("created here");
            let seen = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        tracing::dispatcher::with_default(&dispatch, || {
                            let _in = created_here.enter();
                            TraceIds::current()
                        })
                    })
                    .join()
                    .unwrap()
            });
            assert_eq!(seen, TraceIds::from_span(&created_here), "{mode:?}");
            assert!(seen.is_some(), "{mode:?}");
            // The span created here but entered elsewhere does not leak
            // into the next enter on this thread.
            let c = tracing::info_span!("c");
            let _c = c.enter();
            assert_eq!(TraceIds::current(), TraceIds::from_span(&c), "{mode:?}");
        });
    }
}

#[test]
fn out_of_order_exits_restore_the_right_context() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let a = tracing::info_span!("a").entered();
            let a_ids = TraceIds::current().unwrap();
            let b = tracing::info_span!("b");
            let b_entered = b.clone().entered();
            // Exit `a` while `b` is still entered.
            let a = a.exit();
            assert_eq!(TraceIds::current(), TraceIds::from_span(&b), "{mode:?}");
            drop(b_entered);
            assert_eq!(TraceIds::current(), None, "{mode:?}");
            drop(a);
            let _ = a_ids;
        });
    }
}

#[test]
fn a_span_with_parent_none_starts_a_new_trace() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let _request = tracing::info_span!("request").entered();
            let request = TraceIds::current().unwrap();
            let job = tracing::info_span!(parent: None, "background_job");
            let job_ids = job.in_scope(|| TraceIds::current().unwrap());
            assert_ne!(job_ids.trace_id(), request.trace_id(), "{mode:?}");
            assert!(job_ids.is_sampled());
        });
    }
}

#[test]
fn span_fields_recorded_later_replace_and_never_duplicate() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let span = tracing::info_span!(
                "req",
                name = "shadow",
                status = tracing::field::Empty,
                a = 1
            );
            let _e = span.enter();
            tracing::info!("before");
            span.record("status", 200);
            span.record("a", 2);
            span.record("status", 201);
            tracing::info!("after");
        });
        let lines = h.lines();
        let before = &line_with(&lines, "before")["span"];
        assert_eq!(before["name"], "req");
        assert_eq!(before["fields.name"], "shadow");
        assert!(before.get("status").is_none());
        let after = &line_with(&lines, "after")["span"];
        assert_eq!(after["status"], 201);
        assert_eq!(after["a"], 2);
        assert_eq!(after["fields.name"], "shadow");
    }
}

#[test]
fn exact_line_layout() {
    for mode in MODES {
        let h = Harness::new(mode);
        let ids = h.run(|| {
            let span = tracing::info_span!("request", method = "GET", path = "/a\"b");
            let _e = span.enter();
            tracing::warn!(target: "app::http", status = 503u16, retry = true, ratio = 0.5, "upstream {} failed", "db");
            TraceIds::current().unwrap()
        });
        // A root: stand-alone mints a random trace id and says so (random +
        // sampled); the SDK sets only sampled.
        let flags = if mode == Mode::Standalone { "03" } else { "01" };
        let expected = format!(
            "{{\"timestamp\":\"2026-11-21T00:00:00.000000Z\",\"level\":\"WARN\",\"trace_id\":\"{}\",\"span_id\":\"{}\",\"trace_flags\":\"{flags}\",\"target\":\"app::http\",\"message\":\"upstream db failed\",\"status\":503,\"retry\":true,\"ratio\":0.5,\"span\":{{\"name\":\"request\",\"method\":\"GET\",\"path\":\"/a\\\"b\"}}}}\n",
            ids.trace_id_hex(),
            ids.span_id_hex()
        );
        assert_eq!(h.out.text(), expected, "{mode:?}");
    }
}

/// The span id of `opentelemetry::Context::current()`.
fn context_span_id() -> SpanId {
    opentelemetry::Context::current()
        .span()
        .span_context()
        .span_id()
}

/// `x` entered again inside `y`: tracing's registry keeps `y` as the current
/// span (its span stack skips a span entered twice), so the context, and the
/// ids of a line, stay `y`'s, which is the span the line names. Stand-alone
/// only: with the SDK, tracing-opentelemetry attaches `x`'s context again on
/// every enter (ARCHITECTURE.md, "Two sources of ids").
#[test]
fn a_span_entered_again_inside_another_leaves_the_inner_one_current() {
    let h = Harness::new(Mode::Standalone);
    let current = || {
        (
            context_span_id(),
            tracing::Span::current()
                .metadata()
                .map(tracing::Metadata::name),
        )
    };
    let (x, y, seen) = h.run(|| {
        let x = tracing::info_span!("x");
        let y = tracing::info_span!("y", k = 1);
        let (x_ids, y_ids) = (
            TraceIds::from_span(&x).unwrap(),
            TraceIds::from_span(&y).unwrap(),
        );
        let mut seen = Vec::new();
        let first = x.enter();
        let inner = y.enter();
        let again = x.enter();
        tracing::info!("x again");
        seen.push(current());
        drop(again);
        tracing::info!("x left again");
        seen.push(current());
        drop(inner);
        tracing::info!("y left");
        seen.push(current());
        // Out of order: the first enter's guard goes first, then the second's.
        let inner = y.enter();
        let again = x.enter();
        drop(first);
        tracing::info!("first x guard dropped");
        seen.push(current());
        drop(again);
        tracing::info!("both x guards dropped");
        seen.push(current());
        drop(inner);
        seen.push(current());
        (x_ids, y_ids, seen)
    });
    let y_now = (y.span_id(), Some("y"));
    assert_eq!(
        seen,
        [
            y_now,
            y_now,
            (x.span_id(), Some("x")),
            y_now,
            y_now,
            (SpanId::INVALID, None),
        ]
    );
    let lines = h.lines();
    assert_eq!(lines.len(), 5);
    for (message, ids, span) in [
        ("x again", y, "y"),
        ("x left again", y, "y"),
        ("y left", x, "x"),
        ("first x guard dropped", y, "y"),
        ("both x guards dropped", y, "y"),
    ] {
        let line = line_with(&lines, message);
        assert_eq!(ids_of(line), Some(hex(ids)), "{message}");
        assert_eq!(line["span"]["name"], span, "{message}");
    }
}

/// The same span entered three times on one thread (recursion through
/// `in_scope`, a future instrumented with the span it is polled in): it
/// stays current, with its own ids on every line, until its last exit.
#[test]
fn a_span_entered_three_times_is_current_until_its_last_exit() {
    let h = Harness::new(Mode::Standalone);
    let (x, seen) = h.run(|| {
        let x = tracing::info_span!("x");
        let x_ids = TraceIds::from_span(&x).unwrap();
        let mut seen = Vec::new();
        x.in_scope(|| {
            x.in_scope(|| {
                x.in_scope(|| tracing::info!("three deep"));
                seen.push(context_span_id());
                tracing::info!("two deep");
            });
            seen.push(context_span_id());
            tracing::info!("one deep");
        });
        seen.push(context_span_id());
        tracing::info!("outside");
        (x_ids, seen)
    });
    assert_eq!(seen, [x.span_id(), x.span_id(), SpanId::INVALID]);
    let lines = h.lines();
    assert_eq!(lines.len(), 4);
    for message in ["three deep", "two deep", "one deep"] {
        let line = line_with(&lines, message);
        assert_eq!(ids_of(line), Some(hex(x)), "{message}");
        assert_eq!(line["span"]["name"], "x", "{message}");
    }
    assert_eq!(ids_of(line_with(&lines, "outside")), None);
}
