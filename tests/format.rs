//! The JSON format's options and its robustness against hostile input.

mod support;

use proptest::prelude::*;
use support::{ids_of, parse_strict, FixedTime, Harness, Mode, MODES};
use tracing_correlation::{FieldPlacement, JsonFormat, MissingIds, TraceIds, TraceKeys};

fn run_one(format: JsonFormat<FixedTime>, mode: Mode) -> (serde_json::Value, TraceIds) {
    let h = Harness::with_format(mode, format);
    let ids = h.run(|| {
        let _s = tracing::info_span!("outer", tenant = "t1").entered();
        let _i = tracing::info_span!("inner", step = 2).entered();
        tracing::info!(k = 1, "hello");
        TraceIds::current().unwrap()
    });
    let mut lines = h.lines();
    assert_eq!(lines.len(), 1);
    (lines.remove(0), ids)
}

#[test]
fn ecs_keys() {
    let (line, ids) = run_one(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_trace_keys(TraceKeys::ecs()),
        Mode::Standalone,
    );
    assert_eq!(line["trace.id"], ids.trace_id_hex().as_str());
    assert_eq!(line["span.id"], ids.span_id_hex().as_str());
    assert!(line.get("trace_id").is_none() && line.get("trace_flags").is_none());
}

#[test]
fn google_cloud_keys() {
    let (line, ids) = run_one(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_trace_keys(TraceKeys::google_cloud("my-proj")),
        Mode::Otel,
    );
    assert_eq!(
        line["logging.googleapis.com/trace"],
        format!("projects/my-proj/traces/{}", ids.trace_id_hex())
    );
    assert_eq!(
        line["logging.googleapis.com/spanId"],
        ids.span_id_hex().as_str()
    );
    assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
}

#[test]
fn datadog_keys_are_decimal_low_64_bits() {
    let (line, ids) = run_one(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_trace_keys(TraceKeys::datadog()),
        Mode::Standalone,
    );
    let trace = u128::from_be_bytes(ids.trace_id().to_bytes()) as u64;
    let span = u64::from_be_bytes(ids.span_id().to_bytes());
    assert_eq!(line["dd.trace_id"], trace.to_string());
    assert_eq!(line["dd.span_id"], span.to_string());
}

#[test]
fn custom_keys_without_flags() {
    let keys = TraceKeys::custom("traceId", "spanId", None::<&str>);
    let (line, ids) = run_one(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_trace_keys(keys),
        Mode::Standalone,
    );
    assert_eq!(line["traceId"], ids.trace_id_hex().as_str());
    assert_eq!(line["spanId"], ids.span_id_hex().as_str());
}

#[test]
fn zeros_when_asked_and_no_context() {
    let h = Harness::with_format(
        Mode::Standalone,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_missing_ids(MissingIds::Zeros),
    );
    h.run(|| tracing::info!("no trace"));
    let line = &h.lines()[0];
    assert_eq!(line["trace_id"], "0".repeat(32));
    assert_eq!(line["span_id"], "0".repeat(16));
    assert_eq!(line["trace_flags"], "00");
}

#[test]
fn nested_fields_span_list_and_no_time() {
    let format = JsonFormat::new()
        .with_timer(FixedTime)
        .without_time()
        .with_fields(FieldPlacement::Nested)
        .with_span_list(true)
        .with_current_span(false)
        .with_target(false);
    let (line, _) = run_one(format, Mode::Standalone);
    assert!(line.get("timestamp").is_none() && line.get("target").is_none());
    assert_eq!(line["message"], "hello");
    assert_eq!(line["fields"], serde_json::json!({"k": 1}));
    assert!(line.get("span").is_none());
    assert_eq!(
        line["spans"],
        serde_json::json!([{"name": "outer", "tenant": "t1"}, {"name": "inner", "step": 2}])
    );
}

#[test]
fn user_fields_named_like_ours_are_kept_under_a_prefix() {
    for mode in MODES {
        let h = Harness::new(mode);
        let ids = h.run(|| {
            let _s = tracing::info_span!("s").entered();
            tracing::info!(
                trace_id = "forged",
                span_id = 1,
                level = "x",
                timestamp = 3,
                target = "t",
                span = "sp",
                fields.trace_id = "pre-prefixed",
                "real message"
            );
            TraceIds::current().unwrap()
        });
        let line = &h.lines()[0];
        assert_eq!(
            ids_of(line).unwrap().0,
            ids.trace_id_hex().as_str(),
            "{mode:?}"
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "real message");
        assert_eq!(line["fields.trace_id"], "forged");
        assert_eq!(line["fields.fields.trace_id"], "pre-prefixed");
        assert_eq!(line["fields.span_id"], 1);
        assert_eq!(line["fields.level"], "x");
        assert_eq!(line["fields.span"], "sp");
    }
}

#[test]
fn values_of_every_kind() {
    let h = Harness::new(Mode::Standalone);
    h.run(|| {
        let err = std::io::Error::other("disk \"full\"");
        tracing::info!(
            a = -5i64,
            b = u64::MAX,
            c = i128::MIN,
            d = u128::MAX,
            e = f64::NAN,
            f = 1e300,
            g = false,
            h = ?Some("dbg\n"),
            i = %"disp\u{1b}[31m",
            j = &err as &(dyn std::error::Error + 'static),
        );
    });
    let raw = h.out.text();
    let line = parse_strict(raw.trim_end());
    assert_eq!(line["a"], -5);
    assert_eq!(line["b"], u64::MAX);
    assert!(raw.contains(&format!("\"c\":{}", i128::MIN)));
    assert!(raw.contains(&format!("\"d\":{}", u128::MAX)));
    assert_eq!(line["e"], "NaN");
    assert_eq!(line["f"], 1e300);
    assert_eq!(line["g"], false);
    assert_eq!(line["h"], "Some(\"dbg\\n\")");
    assert_eq!(line["i"], "disp\u{1b}[31m");
    assert_eq!(line["j"], "disk \"full\"");
    assert!(
        !raw.trim_end().contains('\u{1b}'),
        "control characters are escaped"
    );
}

/// A value whose `Debug` output is attacker-controlled.
struct Hostile(String);

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_strings_always_give_one_valid_line_with_unique_keys_and_the_ids(
        message in any::<String>(),
        value in any::<String>(),
        dbg_text in any::<String>(),
        span_value in any::<String>(),
        otel in any::<bool>(),
    ) {
        let mode = if otel { Mode::Otel } else { Mode::Standalone };
        let h = Harness::with_format(mode, JsonFormat::new().with_timer(FixedTime).with_span_list(true));
        let hostile = Hostile(dbg_text.clone());
        let ids = h.run(|| {
            let _s = tracing::info_span!("s\"\n", name = span_value.as_str(), "we\"ird" = span_value.as_str()).entered();
            tracing::info!(
                "trace_id" = value.as_str(),
                "message" = message.as_str(),
                "a\"b\\c\n" = ?hostile,
                "fields.a\"b\\c\n" = 1,
                "\u{0}" = value.as_str(),
            );
            TraceIds::current().unwrap()
        });
        let text = h.out.text();
        prop_assert_eq!(text.matches('\n').count(), 1, "exactly one line: {}", text);
        let line = parse_strict(text.trim_end());
        prop_assert_eq!(line["message"].as_str(), Some(message.as_str()));
        prop_assert_eq!(line["fields.trace_id"].as_str(), Some(value.as_str()));
        prop_assert_eq!(line["a\"b\\c\n"].as_str(), Some(dbg_text.as_str()));
        prop_assert_eq!(line["span"]["fields.name"].as_str(), Some(span_value.as_str()));
        prop_assert_eq!(line["span"]["name"].as_str(), Some("s\"\n"));
        prop_assert_eq!(line["trace_id"].as_str().map(str::to_owned), Some(ids.trace_id_hex().to_string()));
        prop_assert_eq!(line["span_id"].as_str().map(str::to_owned), Some(ids.span_id_hex().to_string()));
    }
}

#[test]
fn pretty_lines_carry_the_ids_and_cannot_be_forged() {
    let out = support::Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .format(tracing_correlation::OutputFormat::Pretty)
        .writer(out.clone())
        .filter("info")
        .build()
        .unwrap();
    let ids = tracing::dispatcher::with_default(&dispatch, || {
        let _s = tracing::info_span!("request").entered();
        let _d = tracing::info_span!("db").entered();
        tracing::info!(user = "eve\n{\"forged\":1}", "hello\nworld");
        TraceIds::current().unwrap()
    });
    let text = out.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line = text.trim_end();
    assert!(
        line.contains(" INFO request:db: format: hello\\nworld user=\"eve\\n{\\\"forged\\\":1}\""),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            " trace_id={} span_id={}",
            ids.trace_id_hex(),
            ids.span_id_hex()
        )),
        "{line}"
    );
}
