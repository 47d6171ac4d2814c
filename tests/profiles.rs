//! Whole-line profiles (golden lines, fixed clock), static fields,
//! `parent_span_id`, source locations and error chains.

mod support;

use std::fmt;

use serde_json::json;
use support::{parse_strict, FixedTime, Harness, Mode, MODES};
use tracing::field::Empty;
use tracing_correlation::{FieldPlacement, JsonFormat, Profile, TraceIds};

const FILE: &str = "tests/profiles.rs";

/// One WARN event in `request` > `db`, with static fields, the parent span id
/// and the source location on; returns the line and the ids of both spans.
fn golden(profile: Profile) -> (String, TraceIds, TraceIds, u32) {
    let format = JsonFormat::new()
        .with_timer(FixedTime)
        .with_profile(profile)
        .with_static_fields([
            ("service.name", "checkout"),
            ("service.version", "1.4.2"),
            ("deployment.environment.name", "prod"),
        ])
        .with_parent_span_id(true)
        .with_source_location(true);
    assert_eq!(format.validate(), Ok(()));
    let h = Harness::with_format(Mode::Standalone, format);
    let (outer, inner, line) = h.run(|| {
        let outer = tracing::info_span!("request", method = "GET");
        let _outer = outer.enter();
        let inner = tracing::info_span!("db");
        let _inner = inner.enter();
        let line = line!() + 1;
        tracing::warn!(rows = 3, "slow query");
        (
            TraceIds::from_span(&outer).unwrap(),
            TraceIds::from_span(&inner).unwrap(),
            line,
        )
    });
    let text = h.out.text();
    assert_eq!(text.lines().count(), 1);
    parse_strict(text.trim_end());
    (text.trim_end().to_owned(), outer, inner, line)
}

fn low64_span(ids: &TraceIds) -> u64 {
    u64::from_be_bytes(ids.span_id().to_bytes())
}

#[test]
fn opentelemetry_golden_line() {
    let (line, outer, inner, at) = golden(Profile::opentelemetry());
    assert_eq!(
        line,
        format!(
            concat!(
                r#"{{"timestamp":"2026-11-21T00:00:00.000000Z","level":"WARN","#,
                r#""trace_id":"{t}","span_id":"{s}","trace_flags":"03","parent_span_id":"{p}","#,
                r#""target":"profiles","code.file.path":"{f}","code.line.number":{l},"#,
                r#""message":"slow query","rows":3,"#,
                r#""service.name":"checkout","service.version":"1.4.2","deployment.environment.name":"prod","#,
                r#""span":{{"name":"db"}}}}"#
            ),
            t = inner.trace_id_hex(),
            s = inner.span_id_hex(),
            p = outer.span_id_hex(),
            f = FILE,
            l = at,
        )
    );
}

#[test]
fn ecs_golden_line() {
    let (line, outer, inner, at) = golden(Profile::ecs());
    assert_eq!(
        line,
        format!(
            concat!(
                r#"{{"@timestamp":"2026-11-21T00:00:00.000000Z","log.level":"warn","#,
                r#""trace.id":"{t}","span.id":"{s}","parent_span_id":"{p}","#,
                r#""log.logger":"profiles","log.origin.file.name":"{f}","log.origin.file.line":{l},"#,
                r#""message":"slow query","rows":3,"#,
                r#""ecs.version":"8.11.0","service.name":"checkout","service.version":"1.4.2","service.environment":"prod","#,
                r#""span":{{"name":"db"}}}}"#
            ),
            t = inner.trace_id_hex(),
            s = inner.span_id_hex(),
            p = outer.span_id_hex(),
            f = FILE,
            l = at,
        )
    );
}

#[test]
fn google_cloud_golden_line() {
    let (line, outer, inner, at) = golden(Profile::google_cloud("my-proj"));
    assert_eq!(
        line,
        format!(
            concat!(
                r#"{{"time":"2026-11-21T00:00:00.000000Z","severity":"WARNING","#,
                r#""logging.googleapis.com/trace":"projects/my-proj/traces/{t}","#,
                r#""logging.googleapis.com/spanId":"{s}","logging.googleapis.com/trace_sampled":true,"#,
                r#""parent_span_id":"{p}","target":"profiles","#,
                r#""logging.googleapis.com/sourceLocation":{{"file":"{f}","line":"{l}","function":"profiles"}},"#,
                r#""message":"slow query","rows":3,"#,
                r#""logging.googleapis.com/labels":{{"service.name":"checkout","service.version":"1.4.2","deployment.environment.name":"prod"}},"#,
                r#""span":{{"name":"db"}}}}"#
            ),
            t = inner.trace_id_hex(),
            s = inner.span_id_hex(),
            p = outer.span_id_hex(),
            f = FILE,
            l = at,
        )
    );
}

#[test]
fn datadog_golden_line() {
    let (line, outer, inner, at) = golden(Profile::datadog());
    let trace = u128::from_be_bytes(inner.trace_id().to_bytes()) as u64;
    assert_eq!(
        line,
        format!(
            concat!(
                r#"{{"timestamp":"2026-11-21T00:00:00.000000Z","status":"warning","#,
                r#""dd.trace_id":"{t}","dd.span_id":"{s}","parent_span_id":"{p}","#,
                r#""logger.name":"profiles","code.file.path":"{f}","code.line.number":{l},"#,
                r#""message":"slow query","rows":3,"#,
                r#""dd.service":"checkout","dd.version":"1.4.2","dd.env":"prod","#,
                r#""span":{{"name":"db"}}}}"#
            ),
            t = trace,
            s = low64_span(&inner),
            p = low64_span(&outer),
            f = FILE,
            l = at,
        )
    );
}

#[test]
fn level_names_follow_the_profile() {
    let cases: [(Profile, &str, [&str; 5]); 4] = [
        (
            Profile::opentelemetry(),
            "level",
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"],
        ),
        (
            Profile::ecs(),
            "log.level",
            ["trace", "debug", "info", "warn", "error"],
        ),
        (
            Profile::google_cloud("p"),
            "severity",
            ["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR"],
        ),
        (
            Profile::datadog(),
            "status",
            ["debug", "debug", "info", "warning", "error"],
        ),
    ];
    for (profile, key, names) in cases {
        let h = Harness::with_format(
            Mode::Standalone,
            JsonFormat::new()
                .with_timer(FixedTime)
                .with_profile(profile),
        );
        h.run(|| {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        });
        let got: Vec<String> = h
            .lines()
            .iter()
            .map(|line| line[key].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, names, "{key}");
    }
}

#[test]
fn custom_names_and_event_fields_named_like_static_fields() {
    let profile = Profile::opentelemetry()
        .with_timestamp_key("ts")
        .with_level_key("lvl")
        .with_level_names(["t", "d", "i", "w", "e"])
        .with_message_key("msg")
        .with_target_key("logger");
    let format = JsonFormat::new()
        .with_timer(FixedTime)
        .with_profile(profile)
        .with_static_field("service.name", "a\"b\n")
        .with_static_field("service.name", "checkout");
    for mode in MODES {
        let h = Harness::with_format(mode, format.clone());
        h.run(|| {
            tracing::info!(service.name = "forged", lvl = 1, msg = 2, "hello");
        });
        let line = &h.lines()[0];
        assert_eq!(
            *line,
            json!({
                "ts": "2026-11-21T00:00:00.000000Z",
                "lvl": "i",
                "logger": "profiles",
                "msg": "hello",
                "fields.service.name": "forged",
                "fields.lvl": 1,
                "fields.msg": 2,
                "service.name": "checkout",
            }),
            "{mode:?}"
        );
    }
    // Escaped once, at construction.
    let h = Harness::with_format(
        Mode::Standalone,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_static_field("service.name", "a\"b\n"),
    );
    h.run(|| tracing::info!("x"));
    assert!(h.out.text().contains(r#""service.name":"a\"b\n""#));
}

#[test]
fn static_fields_named_like_fixed_keys_are_renamed_and_reported() {
    let format = JsonFormat::new()
        .with_timer(FixedTime)
        .with_static_field("message", "static");
    assert_eq!(
        format.validate().unwrap_err().to_string(),
        "the static field key `message` is also the line's message key: choose another name \
         (until then the static field is written as `fields.message`)"
    );
    let h = Harness::with_format(Mode::Standalone, format);
    h.run(|| tracing::info!(message2 = 1, "real"));
    let line = &h.lines()[0];
    assert_eq!(line["message"], "real");
    assert_eq!(line["fields.message"], "static");
    let level_is_message =
        JsonFormat::new().with_profile(Profile::opentelemetry().with_level_key("message"));
    assert_eq!(level_is_message.validate().unwrap_err().key(), "message");
}

#[test]
fn parent_span_id_rebuilds_the_tree_and_is_off_by_default() {
    for mode in MODES {
        let on = Harness::with_format(
            mode,
            JsonFormat::new()
                .with_timer(FixedTime)
                .with_parent_span_id(true),
        );
        let (root, child, grandchild) = on.run(|| {
            let root = tracing::info_span!("root");
            let _r = root.enter();
            tracing::info!("in root");
            let child = tracing::info_span!("child");
            let _c = child.enter();
            tracing::info!("in child");
            let grandchild = tracing::info_span!("grandchild");
            grandchild.in_scope(|| tracing::info!("in grandchild"));
            // An explicit parent: that span's parent.
            tracing::info!(parent: &grandchild, "explicit");
            (
                TraceIds::from_span(&root).unwrap(),
                TraceIds::from_span(&child).unwrap(),
                TraceIds::from_span(&grandchild).unwrap(),
            )
        });
        let lines = on.lines();
        let parents: Vec<Option<&str>> = lines
            .iter()
            .map(|line| line.get("parent_span_id").and_then(|p| p.as_str()))
            .collect();
        let (r, c) = (root.span_id_hex(), child.span_id_hex());
        assert_eq!(
            parents,
            [None, Some(r.as_str()), Some(c.as_str()), Some(c.as_str())],
            "{mode:?}"
        );
        assert_eq!(lines[2]["span_id"], grandchild.span_id_hex().as_str());

        let off = Harness::with_format(mode, JsonFormat::new().with_timer(FixedTime));
        off.run(|| {
            let _r = tracing::info_span!("root").entered();
            let _c = tracing::info_span!("child").entered();
            tracing::info!("in child");
        });
        assert!(off.lines()[0].get("parent_span_id").is_none(), "{mode:?}");
    }
}

#[test]
fn a_span_in_another_trace_than_its_tracing_parent_gets_no_parent_span_id() {
    use tracing_correlation::opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    let h = Harness::with_format(
        Mode::Standalone,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_parent_span_id(true),
    );
    h.run(|| {
        let _outer = tracing::info_span!("outer").entered();
        // A remote parent attached inside `outer`: the next span joins its
        // trace, so `outer` is not its parent in any trace.
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let _attached = tracing_correlation::opentelemetry::Context::new()
            .with_remote_span_context(remote)
            .attach();
        tracing::info_span!("child").in_scope(|| tracing::info!("in child"));
    });
    let lines = h.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(lines[0].get("parent_span_id").is_none(), "{}", lines[0]);
}

#[derive(Debug)]
struct RequestFailed {
    source: DbUnavailable,
}

#[derive(Debug)]
struct DbUnavailable(std::io::Error);

impl fmt::Display for RequestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

impl std::error::Error for RequestFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl fmt::Display for DbUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("db \"main\" unavailable")
    }
}

impl std::error::Error for DbUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn request_failed() -> RequestFailed {
    RequestFailed {
        source: DbUnavailable(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )),
    }
}

/// An error that is its own source: the chain must stay bounded.
#[derive(Debug)]
struct Looping;

impl fmt::Display for Looping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("again")
    }
}

impl std::error::Error for Looping {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&Looping)
    }
}

fn error_line(format: JsonFormat<FixedTime>) -> serde_json::Value {
    let h = Harness::with_format(Mode::Standalone, format);
    h.run(|| {
        let err = request_failed();
        tracing::error!(error = &err as &dyn std::error::Error, code = 7, "failed");
    });
    h.lines().remove(0)
}

#[test]
fn error_fields_carry_their_chain_and_the_profiles_exception_keys() {
    let chain = json!(["db \"main\" unavailable", "connection refused"]);
    let line = error_line(JsonFormat::new().with_timer(FixedTime).without_time());
    assert_eq!(
        line,
        json!({
            "level": "ERROR",
            "target": "profiles",
            "message": "failed",
            "exception.type": "RequestFailed",
            "exception.message": "request failed",
            "error": "request failed",
            "error.chain": chain,
            "code": 7,
        })
    );
    for (profile, kind) in [
        (Profile::ecs(), "error.type"),
        (Profile::datadog(), "error.kind"),
    ] {
        let line = error_line(
            JsonFormat::new()
                .with_timer(FixedTime)
                .with_profile(profile),
        );
        assert_eq!(line[kind], "RequestFailed");
        assert_eq!(line["error.message"], "request failed");
        assert_eq!(line["error.chain"], chain);
        assert!(line.get("error").is_none(), "{line}");
    }
    let line = error_line(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_profile(Profile::google_cloud("p")),
    );
    assert_eq!(line["error"], "request failed");
    assert_eq!(line["error.chain"], chain);
    assert!(line.get("exception.message").is_none());
    let nested = error_line(
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_fields(FieldPlacement::Nested),
    );
    assert_eq!(nested["fields"]["error.chain"], chain);
}

#[test]
fn error_chains_are_bounded_keys_unique_and_span_errors_replaced() {
    let h = Harness::new(Mode::Standalone);
    h.run(|| {
        let looping = Looping;
        let other = request_failed();
        tracing::warn!(
            error = &looping as &dyn std::error::Error,
            error.chain = "a field of that name",
            second = &other as &dyn std::error::Error,
            "two errors"
        );
        let span = tracing::info_span!("job", error = Empty);
        let _entered = span.enter();
        // (Not a looping error here: tracing-subscriber's own field
        // formatter, which the fmt layer runs on span fields, walks a
        // source chain without a bound.)
        let first = std::io::Error::other("first");
        span.record("error", &first as &dyn std::error::Error);
        span.record("error", &request_failed() as &dyn std::error::Error);
        tracing::info!("in job");
    });
    let lines = h.lines();
    let first = &lines[0];
    assert_eq!(first["error.chain"], json!(vec!["again"; 8]));
    assert_eq!(first["fields.error.chain"], "a field of that name");
    assert_eq!(first["exception.message"], "again");
    assert_eq!(first["exception.type"], "Looping");
    assert_eq!(first["second"], "request failed");
    assert_eq!(first["second.chain"][1], "connection refused");
    assert_eq!(
        lines[1]["span"],
        json!({
            "name": "job",
            "error": "request failed",
            "error.chain": ["db \"main\" unavailable", "connection refused"],
        })
    );
}

#[test]
fn pretty_lines_show_the_parent_span_id_and_error_chains() {
    use tracing_correlation::{CorrelationLayer, PrettyFormat};
    use tracing_subscriber::layer::SubscriberExt;

    let out = support::Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(CorrelationLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(
                    PrettyFormat::new()
                        .with_timer(FixedTime)
                        .with_parent_span_id(true),
                )
                .with_writer(out.clone()),
        );
    let (outer, inner) = tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request");
        let _o = outer.enter();
        let inner = tracing::info_span!("db");
        let _i = inner.enter();
        let err = request_failed();
        tracing::error!(error = &err as &dyn std::error::Error, "failed");
        (
            TraceIds::from_span(&outer).unwrap(),
            TraceIds::from_span(&inner).unwrap(),
        )
    });
    assert_eq!(
        out.text(),
        format!(
            "2026-11-21T00:00:00.000000Z ERROR request:db: profiles: failed \
             error=\"request failed\" error.chain=[\"db \"main\" unavailable\", \"connection refused\"] \
             trace_id={} span_id={} parent_span_id={}\n",
            inner.trace_id_hex(),
            inner.span_id_hex(),
            outer.span_id_hex()
        )
    );
}
