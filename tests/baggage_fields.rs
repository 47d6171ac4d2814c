//! Allowlisted baggage on JSON lines, in both id modes: only allowed keys,
//! bounded and escaped values, colliding keys renamed.

mod support;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use support::{FixedTime, Harness, MODES};
use tracing_correlation::{FieldPlacement, JsonFormat};

const HOSTILE: &str = "a\"b\\c\n\r\t\u{1b}[31m\u{7f}\u{0}\u{2028}z";

fn baggage() -> Context {
    Context::new().with_baggage(entries())
}

fn entries() -> Vec<KeyValue> {
    vec![
        KeyValue::new("tenant", "acme"),
        KeyValue::new("user_id", "42"),
        KeyValue::new("secret", "s3cr3t"),
        KeyValue::new("level", "oops"),
        KeyValue::new("hostile", HOSTILE),
        KeyValue::new("long", "é".repeat(200)), // 400 bytes
    ]
}

fn line_with<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
}

fn format(keys: &[&str]) -> JsonFormat<FixedTime> {
    JsonFormat::new()
        .with_timer(FixedTime)
        .with_baggage_fields(keys.iter().copied())
}

#[test]
fn only_allowlisted_keys_are_written_bounded_and_escaped() {
    for mode in MODES {
        let h = Harness::with_format(
            mode,
            format(&["tenant", "user_id", "hostile", "long", "absent"]),
        );
        h.run(|| {
            let _attached = baggage().attach();
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        let lines = h.lines();
        let line = line_with(&lines, "inside");
        assert_eq!(line["tenant"], "acme", "{mode:?}");
        assert_eq!(line["user_id"], "42", "{mode:?}");
        // Escaped on the way out, identical once parsed.
        assert_eq!(line["hostile"], HOSTILE, "{mode:?}");
        // 256 bytes by default: 128 two-byte characters.
        assert_eq!(line["long"], "é".repeat(128), "{mode:?}");
        for absent in ["secret", "absent", "fields.level"] {
            assert!(line.get(absent).is_none(), "{mode:?}: {absent} in {line}");
        }
        assert_eq!(line["level"], "INFO");
        // No raw control character reaches the output.
        let text = h.out.text();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7f}'),
            "{text}"
        );
    }
}

#[test]
fn the_length_bound_is_configurable_and_cuts_on_a_char_boundary() {
    for mode in MODES {
        let h = Harness::with_format(mode, format(&["long", "tenant"]).with_baggage_max_len(7));
        h.run(|| {
            let _attached = baggage().attach();
            tracing::info_span!("s").in_scope(|| tracing::info!("inside"));
        });
        let lines = h.lines();
        let line = line_with(&lines, "inside");
        assert_eq!(line["long"], "ééé", "{mode:?}"); // 6 of at most 7 bytes
        assert_eq!(line["tenant"], "acme", "{mode:?}");
    }
}

#[test]
fn colliding_keys_are_renamed_never_duplicated() {
    for placement in [FieldPlacement::Flatten, FieldPlacement::Nested] {
        for mode in MODES {
            let h = Harness::with_format(
                mode,
                format(&["level", "trace_id", "tenant", "message"]).with_fields(placement),
            );
            h.run(|| {
                let mut forged = entries();
                forged.push(KeyValue::new("trace_id", "forged"));
                forged.push(KeyValue::new("message", "forged message"));
                let cx = Context::new().with_baggage(forged);
                let _attached = cx.attach();
                tracing::info_span!("s").in_scope(|| tracing::info!(tenant = "event", "inside"));
            });
            // `lines()` rejects any line with a duplicate key.
            let lines = h.lines();
            let line = line_with(&lines, "inside");
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["fields.level"], "oops", "{mode:?} {placement:?}");
            assert_eq!(line["fields.trace_id"], "forged");
            assert_eq!(line["fields.message"], "forged message");
            assert_ne!(line["trace_id"], "forged");
            match placement {
                // The event's own field keeps its name; baggage yields.
                FieldPlacement::Flatten => {
                    assert_eq!(line["tenant"], "event");
                    assert_eq!(line["fields.tenant"], "acme");
                }
                FieldPlacement::Nested => {
                    assert_eq!(line["fields"]["tenant"], "event");
                    assert_eq!(line["tenant"], "acme");
                }
            }
        }
    }
}

#[test]
fn explicit_parent_events_and_empty_allowlists_carry_no_baggage() {
    for mode in MODES {
        let h = Harness::with_format(mode, format(&["tenant"]));
        h.run(|| {
            let span = baggage().attach_scoped_span();
            tracing::info!(parent: &span, "explicit");
            span.in_scope(|| tracing::info!("contextual"));
        });
        let lines = h.lines();
        assert!(line_with(&lines, "explicit").get("tenant").is_none());
        assert_eq!(line_with(&lines, "contextual")["tenant"], "acme");

        let plain = Harness::new(mode);
        plain.run(|| {
            let _attached = baggage().attach();
            tracing::info_span!("s").in_scope(|| tracing::info!("inside"));
        });
        let lines = plain.lines();
        let line = line_with(&lines, "inside");
        assert!(line.get("tenant").is_none() && line.get("user_id").is_none());
    }
}

trait AttachScopedSpan {
    /// A span created while this context is attached (so it carries its
    /// baggage), returned unentered.
    fn attach_scoped_span(self) -> tracing::Span;
}

impl AttachScopedSpan for Context {
    fn attach_scoped_span(self) -> tracing::Span {
        let _attached = self.attach();
        tracing::info_span!("with baggage")
    }
}
