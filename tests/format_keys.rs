//! No duplicate key on any line, whatever the input: re-recorded span
//! fields, many identical keys, configured key names that collide.

mod support;

use serde_json::json;
use support::{FixedTime, Harness, Mode, MODES};
use tracing::field::Empty;
use tracing_correlation::{JsonFormat, TraceIds, TraceKeys};

#[test]
fn a_renamed_span_field_recorded_again_replaces_its_value() {
    for mode in MODES {
        let h = Harness::new(mode);
        h.run(|| {
            let span = tracing::info_span!("conn", name = Empty, peer = Empty);
            let _entered = span.enter();
            for i in 0..300 {
                span.record("name", format!("n{i}"));
                span.record("peer", i);
            }
            tracing::info!("after");
        });
        let text = h.out.text();
        let lines = h.lines();
        assert_eq!(lines.len(), 1, "{mode:?}");
        assert_eq!(
            lines[0]["span"],
            json!({"name": "conn", "fields.name": "n299", "peer": 299}),
            "{mode:?}"
        );
        assert!(text.len() < 400, "{mode:?}: {} bytes", text.len());
    }
}

#[test]
fn an_event_with_many_identical_keys_keeps_each_under_a_unique_key() {
    let h = Harness::new(Mode::Standalone);
    h.run(|| {
        tracing::info!(
            a = 0,
            a = 1,
            a = 2,
            a = 3,
            a = 4,
            a = 5,
            a = 6,
            a = 7,
            a = 8,
            a = 9,
            a = 10,
            a = 11,
            a = 12,
            a = 13,
            a = 14,
            a = 15,
            a = 16,
            a = 17,
            a = 18,
            a = 19,
            a = 20,
            a = 21,
            a = 22,
            a = 23,
            a = 24,
            a = 25,
            a = 26,
            a = 27,
            a = 28,
            a = 29,
            a = 30,
            "m"
        );
    });
    let line = &h.lines()[0];
    for depth in 0..31 {
        let key = format!("{}a", "fields.".repeat(depth));
        assert_eq!(line[&key], depth, "{key}");
    }
    assert!(line.get("dropped_attributes_count").is_none());
}

#[test]
fn custom_trace_keys_named_like_fixed_keys_are_renamed_and_reported() {
    let keys = TraceKeys::custom("target", "span", Some("level"));
    let format = JsonFormat::new()
        .with_timer(FixedTime)
        .with_trace_keys(keys);
    let conflict = format.validate().expect_err("three keys collide");
    assert_eq!(
        conflict.to_string(),
        "the trace id key `target` is also the line's target key: choose another name \
         (until then the trace id is written as `fields.target`)"
    );
    for mode in MODES {
        let h = Harness::with_format(mode, format.clone());
        let ids = h.run(|| {
            let _s = tracing::info_span!("s").entered();
            tracing::info!("hi");
            TraceIds::current().unwrap()
        });
        let line = &h.lines()[0];
        assert_eq!(line["level"], "INFO", "{mode:?}");
        assert_eq!(line["target"], "format_keys", "{mode:?}");
        assert_eq!(line["span"], json!({"name": "s"}), "{mode:?}");
        assert_eq!(line["fields.target"], ids.trace_id_hex().as_str());
        assert_eq!(line["fields.span"], ids.span_id_hex().as_str());
        // 03 for traces started stand-alone (W3C random flag), 01 from the SDK.
        let flags = format!("{:02x}", ids.trace_flags().to_u8());
        assert_eq!(line["fields.level"], flags.as_str(), "{mode:?}");
    }
}

/// The same callsite through two outputs whose formats reserve different
/// keys, on one thread: a field named like one format's level key is
/// renamed there and kept as is in the other, every time (the per-callsite
/// decision that skips the duplicate check is made per format). A duplicate
/// name within one callsite is renamed under both.
#[test]
fn one_callsite_through_two_formats_is_renamed_only_where_its_key_is_taken() {
    use tracing_correlation::{builder, Output, Profile};
    let ecs = support::Captured::default();
    let otel = support::Captured::default();
    // The format where the keys are free formats first: its decision must
    // not carry over to the other.
    let (dispatch, _guard) = builder()
        .writer(otel.clone())
        .json(JsonFormat::new())
        .filter("info")
        .output(
            Output::make_writer(ecs.clone())
                .json(JsonFormat::new().with_profile(Profile::ecs()))
                .filter("info"),
        )
        .build()
        .expect("valid");
    tracing::dispatcher::with_default(&dispatch, || {
        for round in 0..3 {
            tracing::info!(log.level = round, "clash in ecs");
            tracing::info!(a = 1, a = 2, "same name twice");
        }
    });
    let ecs = ecs.lines();
    let otel = otel.lines();
    assert_eq!((ecs.len(), otel.len()), (6, 6));
    for round in 0..3 {
        let (e, o) = (&ecs[round * 2], &otel[round * 2]);
        assert_eq!(e["log.level"], "info", "{e}");
        assert_eq!(e["fields.log.level"], round, "{e}");
        assert_eq!(o["log.level"], round, "{o}");
        assert_eq!(o["level"], "INFO", "{o}");
        for line in [&ecs[round * 2 + 1], &otel[round * 2 + 1]] {
            assert_eq!(line["a"], 1, "{line}");
            assert_eq!(line["fields.a"], 2, "{line}");
        }
    }
}

/// Span fields are kept inline up to a size and on the heap beyond: values
/// recorded again (growing across that size, shrinking back, in the middle
/// of other members) leave exactly one member per field, in order.
#[test]
fn span_fields_recorded_again_across_the_inline_size_keep_every_member() {
    let out = support::Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .writer(out.clone())
        .json(JsonFormat::new().without_time())
        .filter("info")
        .build()
        .expect("valid");
    let long = "x".repeat(150);
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!("job", a = "short", b = Empty, c = 3);
        let _entered = span.enter();
        tracing::info!("first");
        span.record("b", long.as_str());
        tracing::info!("grown");
        span.record("a", "é\u{1f600}");
        span.record("b", "tiny");
        tracing::info!("shrunk");
    });
    let spans: Vec<String> = out
        .text()
        .lines()
        .map(|line| line[line.find(",\"span\":").expect("a span member")..].to_owned())
        .collect();
    assert_eq!(
        spans,
        [
            r#","span":{"name":"job","a":"short","c":3}}"#.to_owned(),
            format!(r#","span":{{"name":"job","a":"short","c":3,"b":"{long}"}}}}"#),
            r#","span":{"name":"job","c":3,"a":"é😀","b":"tiny"}}"#.to_owned(),
        ]
    );
}

/// Names that need escaping (a quote in a field name, a span name or a
/// target) are escaped, every time the callsite logs, while clean ones next
/// to them are written as they are.
#[test]
fn names_that_need_escaping_are_escaped_on_every_line() {
    let out = support::Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .writer(out.clone())
        .json(JsonFormat::new().without_time())
        .filter("info")
        .build()
        .expect("valid");
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..2 {
            let span = tracing::info_span!("we\"ird\nspan", "sp\"an.key" = 1, plain = 2);
            let _entered = span.enter();
            tracing::info!(target: "tar\"get", clean = 2, "a\"b" = 1, "c\\d" = 3, "hostile");
        }
    });
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        let value = support::parse_strict(line);
        assert_eq!(value["target"], "tar\"get", "{line}");
        assert_eq!(value["a\"b"], 1, "{line}");
        assert_eq!(value["clean"], 2, "{line}");
        assert_eq!(value["c\\d"], 3, "{line}");
        assert_eq!(
            value["span"],
            json!({"name": "we\"ird\nspan", "sp\"an.key": 1, "plain": 2}),
            "{line}"
        );
    }
}

/// The span list is exact on every line: after an ancestor records a field,
/// after a span closes and another takes its place (registry ids are
/// reused), and across threads.
#[test]
fn the_span_list_follows_records_closes_and_threads() {
    let out = support::Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .writer(out.clone())
        .json(JsonFormat::new().without_time().with_span_list(true))
        .filter("info")
        .build()
        .expect("valid");
    tracing::dispatcher::with_default(&dispatch, || {
        let request = tracing::info_span!("request", path = Empty);
        let _request = request.enter();
        {
            let _db = tracing::info_span!("db", table = "a").entered();
            tracing::info!("one");
            tracing::info!("one again");
            request.record("path", "/x");
            tracing::info!("two");
        }
        let cache = tracing::info_span!("cache", key = 1);
        let _cache = cache.enter();
        tracing::info!("three");
        std::thread::scope(|scope| {
            scope.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _job = tracing::info_span!(parent: &cache, "job").entered();
                    tracing::info!("four");
                });
            });
        });
        request.record("path", "/y");
        tracing::info!("five");
    });
    let spans: Vec<(String, serde_json::Value)> = out
        .lines()
        .into_iter()
        .map(|line| {
            (
                line["message"].as_str().unwrap().to_owned(),
                line["spans"].clone(),
            )
        })
        .collect();
    let request = |path: Option<&str>| match path {
        Some(path) => json!({"name": "request", "path": path}),
        None => json!({"name": "request"}),
    };
    let expected = [
        ("one", json!([request(None), {"name": "db", "table": "a"}])),
        (
            "one again",
            json!([request(None), {"name": "db", "table": "a"}]),
        ),
        (
            "two",
            json!([request(Some("/x")), {"name": "db", "table": "a"}]),
        ),
        (
            "three",
            json!([request(Some("/x")), {"name": "cache", "key": 1}]),
        ),
        (
            "four",
            json!([request(Some("/x")), {"name": "cache", "key": 1}, {"name": "job"}]),
        ),
        (
            "five",
            json!([request(Some("/y")), {"name": "cache", "key": 1}]),
        ),
    ];
    let expected: Vec<(String, serde_json::Value)> = expected
        .into_iter()
        .map(|(message, list)| (message.to_owned(), list))
        .collect();
    assert_eq!(spans, expected);
}
