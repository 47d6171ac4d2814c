//! `log` records forwarded by the `LogBridge` into the JSON pipeline. This
//! binary installs the bridge as the process' `log` logger (once); each test
//! forwards into its own scoped subscriber.

mod support;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};

use serde_json::Value;
use support::{ids_of, parse_strict, Captured, FixedTime, Harness, Mode, MODES};
use tracing_correlation::{
    CorrelationLayer, FieldPlacement, JsonFormat, LogBridge, MissingIds, TraceIds,
};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

fn install_bridge() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        LogBridge::new()
            .install()
            .expect("first log logger in this binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn hex(ids: TraceIds) -> (String, String, String) {
    (
        ids.trace_id_hex().to_string(),
        ids.span_id_hex().to_string(),
        ids.trace_flags_hex().to_string(),
    )
}

fn line_with<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
}

#[test]
fn a_forwarded_record_gets_the_spans_ids_its_location_and_its_key_values() {
    install_bridge();
    for mode in MODES {
        let h = Harness::new(mode);
        let (ids, line_no) = h.run(|| {
            let span = tracing::info_span!("request", method = "GET");
            let _entered = span.enter();
            tracing::info!("from tracing");
            let line_no = line!() + 1;
            log::info!(user_id = 7, name = "ada", ok = true, ratio = 0.5; "from log {}", 42);
            (
                TraceIds::from_span(&span).expect("entered span has ids"),
                line_no,
            )
        });
        let lines = h.lines();
        assert_eq!(lines.len(), 2, "{mode:?}: {lines:#?}");
        let line = line_with(&lines, "from log 42");
        assert_eq!(
            ids_of(line),
            Some(hex(ids)),
            "{mode:?}: the span's exact ids"
        );
        assert_eq!(
            ids_of(line),
            ids_of(line_with(&lines, "from tracing")),
            "{mode:?}: same ids as a tracing event at the same place"
        );
        assert_eq!(line["level"], "INFO");
        assert_eq!(
            line["target"],
            module_path!(),
            "the record's target, not the bridge's"
        );
        assert!(
            line.get("log.module_path").is_none(),
            "the module path is left out when it is the target: {line}"
        );
        assert_eq!(line["log.file"], file!());
        assert_eq!(line["log.line"], line_no);
        assert!(
            line.get("log.target").is_none(),
            "the target is written once: {line}"
        );
        assert_eq!(line["user_id"], 7);
        assert_eq!(line["name"], "ada");
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["span"]["name"], "request");
        assert_eq!(line["span"]["method"], "GET");
        if mode == Mode::Otel {
            let exported = h.exported("request");
            assert_eq!(
                TraceIds::from_span_context(&exported.span_context),
                Some(ids)
            );
        }
    }
}

#[test]
fn an_explicit_target_and_every_level_are_kept() {
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    h.run(|| {
        log::error!(target: "db.pool", "e");
        log::warn!(target: "db.pool", "w");
        log::info!(target: "db.pool", "i");
        log::debug!(target: "db.pool", "d");
        log::trace!(target: "db.pool", "t");
    });
    let lines = h.lines();
    let levels: Vec<&str> = lines
        .iter()
        .map(|l| l["level"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(levels, ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]);
    assert!(lines.iter().all(|l| l["target"] == "db.pool"), "{lines:#?}");
    assert!(
        lines.iter().all(|l| l["log.module_path"] == module_path!()),
        "the module path is kept when the target differs: {lines:#?}"
    );
}

#[test]
fn records_outside_any_trace_get_no_trace_keys_or_the_chosen_zeros() {
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    h.run(|| log::info!(n = 1; "no context"));
    let line = &h.lines()[0];
    assert_eq!(ids_of(line), None, "{line}");
    assert_eq!(line["n"], 1);

    let h = Harness::with_format(
        Mode::Standalone,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_missing_ids(MissingIds::Zeros),
    );
    h.run(|| log::info!("no context"));
    assert_eq!(
        ids_of(&h.lines()[0]),
        Some(("0".repeat(32), "0".repeat(16), "00".to_owned()))
    );
}

#[test]
fn an_attached_opentelemetry_context_and_a_spawned_thread_are_followed() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    let remote = SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
        SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let dispatch = h.dispatch.clone();
    let span_ids = h.run(|| {
        {
            let _attached = opentelemetry::Context::new()
                .with_remote_span_context(remote)
                .attach();
            log::info!("attached");
        }
        let span = tracing::info_span!("job");
        let ids = TraceIds::from_span(&span);
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                span.in_scope(|| log::info!("worker in span"));
                log::info!("worker without context");
            });
        })
        .join()
        .expect("worker finished");
        ids
    });
    let lines = h.lines();
    assert_eq!(
        ids_of(line_with(&lines, "attached")),
        Some((
            "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            "00f067aa0ba902b7".to_owned(),
            "01".to_owned()
        ))
    );
    assert_eq!(
        ids_of(line_with(&lines, "worker in span")),
        span_ids.map(hex)
    );
    assert_eq!(ids_of(line_with(&lines, "worker without context")), None);
}

#[test]
fn hostile_key_values_are_escaped_and_never_duplicate_a_key() {
    install_bridge();
    for placement in [FieldPlacement::Flatten, FieldPlacement::Nested] {
        let h = Harness::with_format(
            Mode::Standalone,
            JsonFormat::new()
                .with_timer(FixedTime)
                .with_fields(placement),
        );
        let ids = h.run(|| {
            let span = tracing::info_span!("s");
            let _entered = span.enter();
            log::warn!(
                message = "fake message",
                trace_id = "fake trace",
                span_id = 1,
                level = "fake level",
                target = "fake target",
                timestamp = "fake time",
                fields = "fake fields",
                span = "fake span",
                a = 1,
                a = 2;
                "real \"message\"\n\u{1b}[31m"
            );
            log::warn!(quote = "\"}", nl = "line\nbreak\r\u{0}\u{7f}", uni = "é\u{2028}😀"; "values");
            TraceIds::from_span(&span).expect("ids")
        });
        let text = h.out.text();
        assert_eq!(text.lines().count(), 2, "one line per record: {text}");
        let lines: Vec<Value> = text.lines().map(parse_strict).collect();
        let first = &lines[0];
        assert_eq!(first["message"], "real \"message\"\n\u{1b}[31m");
        assert_eq!(ids_of(first), Some(hex(ids)), "our ids are not overwritten");
        assert_eq!(first["level"], "WARN");
        assert_eq!(first["target"], module_path!());
        let fields = match placement {
            FieldPlacement::Flatten => first,
            FieldPlacement::Nested => &first["fields"],
        };
        if placement == FieldPlacement::Flatten {
            assert_eq!(fields["fields.message"], "fake message");
            assert_eq!(fields["fields.trace_id"], "fake trace");
            assert_eq!(fields["fields.span_id"], 1);
            assert_eq!(fields["fields.level"], "fake level");
            assert_eq!(fields["fields.target"], "fake target");
            assert_eq!(fields["fields.timestamp"], "fake time");
            assert_eq!(fields["fields.fields"], "fake fields");
            assert_eq!(fields["fields.span"], "fake span");
        } else {
            assert_eq!(fields["message"], "fake message");
            assert_eq!(fields["trace_id"], "fake trace");
        }
        assert_eq!(fields["a"], 1);
        assert_eq!(fields["fields.a"], 2, "a repeated key is renamed: {first}");
        let second = &lines[1];
        let fields = match placement {
            FieldPlacement::Flatten => second,
            FieldPlacement::Nested => &second["fields"],
        };
        assert_eq!(fields["quote"], "\"}");
        assert_eq!(fields["nl"], "line\nbreak\r\u{0}\u{7f}");
        assert_eq!(fields["uni"], "é\u{2028}😀");
    }
}

#[test]
fn hostile_key_names_are_escaped() {
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    h.run(|| {
        let source = [
            ("we\"ird\nkey\u{1b}", "v1"),
            ("log.file", "v2"),
            ("", "v3"),
            ("fields.log.file", "v4"),
        ];
        let record = log::Record::builder()
            .args(format_args!("dynamic keys"))
            .level(log::Level::Info)
            .target("hostile")
            .file(Some("f.rs"))
            .key_values(&source)
            .build();
        log::logger().log(&record);
    });
    let line = &h.lines()[0];
    assert_eq!(line["we\"ird\nkey\u{1b}"], "v1");
    assert_eq!(line["log.file"], "f.rs", "the record's own file");
    assert_eq!(line["fields.log.file"], "v2");
    assert_eq!(line[""], "v3");
    assert_eq!(line["fields.fields.log.file"], "v4");
}

/// Counts how often it is formatted.
#[derive(Clone, Default)]
struct FormatCounter(Arc<AtomicUsize>);

impl fmt::Debug for FormatCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fetch_add(1, Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[test]
fn records_the_filter_disables_are_never_formatted() {
    install_bridge();
    let out = Captured::default();
    let filter: Targets = "info,noisy=warn".parse().expect("valid targets");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(CorrelationLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonFormat::new().with_timer(FixedTime))
                .with_writer(out.clone()),
        );
    let counter = FormatCounter::default();
    tracing::subscriber::with_default(subscriber, || {
        log::debug!("{counter:?}");
        log::debug!(value:? = counter; "kv");
        log::info!(target: "noisy", "{counter:?}");
        log::info!(target: "noisy", value:? = counter; "kv");
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            0,
            "disabled records were formatted"
        );
        assert!(
            !log::logger().enabled(
                &log::Metadata::builder()
                    .level(log::Level::Info)
                    .target("noisy")
                    .build()
            ),
            "Log::enabled follows the target directives"
        );
        log::warn!(target: "noisy", value:? = counter; "{counter:?}");
        log::info!("{counter:?}");
    });
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        3,
        "enabled records are formatted once each"
    );
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["target"], "noisy");
    assert_eq!(lines[0]["value"], "counted");
}

#[test]
fn the_pretty_format_shows_the_record_target_and_key_values() {
    install_bridge();
    let out = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(CorrelationLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(tracing_correlation::PrettyFormat::new().with_timer(FixedTime))
                .with_writer(out.clone()),
        );
    tracing::subscriber::with_default(subscriber, || {
        log::info!(target: "db", rows = 3, who = "a\nb"; "query done");
    });
    let text = out.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(" db: query done"), "{text}");
    assert!(text.contains(" rows=3 who=\"a\\nb\""), "{text}");
    assert!(!text.contains("log.target"), "{text}");
}

#[test]
fn trace_keys_named_like_the_location_keys_do_not_duplicate_them() {
    install_bridge();
    let keys =
        tracing_correlation::TraceKeys::custom("log.file", "log.line", Some("log.module_path"));
    let h = Harness::with_format(
        Mode::Standalone,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_trace_keys(keys),
    );
    h.run(|| {
        tracing::info_span!("s").in_scope(|| log::info!(target: "elsewhere", k = 1; "renamed"));
    });
    let line = &h.lines()[0];
    assert_eq!(
        line["log.line"].as_str().map(str::len),
        Some(16),
        "the span id keeps the key: {line}"
    );
    assert_eq!(line["fields.log.file"], file!());
    assert_eq!(line["fields.log.module_path"], module_path!());
    assert!(line["fields.log.line"].is_u64(), "{line}");
}

#[test]
fn locations_stay_exact_across_many_call_sites_and_non_static_files() {
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    let owned_file = String::from("generated/\"quoted\".rs");
    h.run(|| {
        // More call sites than the per-thread location cache holds, twice
        // over, so entries are rendered, reused and evicted.
        for round in 0..2 {
            for line in 0..80u32 {
                log::logger().log(
                    &log::Record::builder()
                        .args(format_args!("site {line} round {round}"))
                        .level(log::Level::Info)
                        .target("sites")
                        .module_path_static(Some(if line % 2 == 0 {
                            "sites"
                        } else {
                            "sites::odd"
                        }))
                        .file_static(Some("src/sites.rs"))
                        .line(Some(line))
                        .build(),
                );
            }
        }
        // A file name that is not 'static is never cached, and is escaped.
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("dynamic"))
                .level(log::Level::Warn)
                .target("dyn")
                .file(Some(&owned_file))
                .line(Some(9))
                .build(),
        );
    });
    let lines = h.lines();
    assert_eq!(lines.len(), 161);
    for (i, line) in lines[..160].iter().enumerate() {
        let site = (i % 80) as u64;
        assert_eq!(line["message"], format!("site {site} round {}", i / 80));
        assert_eq!(line["log.file"], "src/sites.rs");
        assert_eq!(line["log.line"], site);
        if site % 2 == 0 {
            assert!(
                line.get("log.module_path").is_none(),
                "equals the target: {line}"
            );
        } else {
            assert_eq!(line["log.module_path"], "sites::odd");
        }
    }
    assert_eq!(lines[160]["log.file"], "generated/\"quoted\".rs");
    assert_eq!(lines[160]["log.line"], 9);
}

#[test]
fn a_record_with_thousands_of_identical_keys_keeps_a_bounded_unique_set_and_counts_the_rest() {
    install_bridge();
    let h = Harness::new(Mode::Standalone);
    let pairs: Vec<(&str, u64)> = (0..2000).map(|i| ("k", i)).collect();
    h.run(|| {
        log::logger().log(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("flood")
                .args(format_args!("flood"))
                .key_values(&pairs)
                .build(),
        );
    });
    let lines = h.lines();
    assert_eq!(lines.len(), 1);
    let line = lines[0].as_object().unwrap();
    // `k`, `fields.k`, … `fields.`×32 `k`: the rename depth is bounded.
    for depth in 0..=32u64 {
        let key = format!("{}k", "fields.".repeat(depth as usize));
        assert_eq!(line[&key], depth, "{key}");
    }
    let kept = line.keys().filter(|k| k.ends_with('k')).count();
    assert_eq!(kept, 33);
    assert_eq!(line["dropped_attributes_count"], 2000 - 33);
}
