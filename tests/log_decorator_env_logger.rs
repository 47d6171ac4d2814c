//! `CorrelatedLogger` around the real env_logger: its lines carry the ids of
//! the enclosing span. This binary installs the global `log` logger and a
//! global `tracing` subscriber (with only the correlation layer: env_logger
//! writes the lines).

mod support;

use std::io;
use std::sync::{Arc, Mutex, Once};

use env_logger::Target;
use tracing_correlation::{CorrelatedLogger, CorrelationLayer, TraceIds};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Vec<u8>>>);

impl io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("pipe lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pipe {
    /// The lines written so far containing `needle` (each exactly once).
    fn line_with(&self, needle: &str) -> String {
        let text = String::from_utf8(self.0.lock().expect("pipe lock").clone()).expect("UTF-8");
        let matching: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        assert_eq!(matching.len(), 1, "one line with {needle:?} in:\n{text}");
        matching[0].to_owned()
    }
}

fn env_logger_to(pipe: &Pipe) -> env_logger::Logger {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .target(Target::Pipe(Box::new(pipe.clone())))
        .build()
}

/// The value after ` key=` on a line, if any, and how often the key appears.
fn value_of(line: &str, key: &str) -> (Option<String>, usize) {
    let needle = format!(" {key}=");
    let count = line.matches(&needle).count();
    let value = line
        .split(&needle)
        .nth(1)
        .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned());
    (value, count)
}

fn setup() -> Pipe {
    static SETUP: Once = Once::new();
    static PIPE: Mutex<Option<Pipe>> = Mutex::new(None);
    SETUP.call_once(|| {
        let pipe = Pipe::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(CorrelationLayer::new()),
        )
        .expect("first subscriber");
        CorrelatedLogger::new(env_logger_to(&pipe))
            .install(log::LevelFilter::Info)
            .expect("first log logger");
        *PIPE.lock().expect("lock") = Some(pipe);
    });
    PIPE.lock().expect("lock").clone().expect("set up")
}

#[test]
fn env_logger_lines_carry_the_enclosing_spans_ids_as_key_values() {
    let pipe = setup();
    let span = tracing::info_span!("request");
    let ids = span.in_scope(|| {
        log::info!(user_id = 7; "decorated in span");
        TraceIds::from_span(&span).expect("entered span has ids")
    });
    let line = pipe.line_with("decorated in span");
    assert_eq!(value_of(&line, "user_id"), (Some("7".into()), 1), "{line}");
    assert_eq!(
        value_of(&line, "trace_id"),
        (Some(ids.trace_id_hex().to_string()), 1),
        "{line}"
    );
    assert_eq!(
        value_of(&line, "span_id"),
        (Some(ids.span_id_hex().to_string()), 1),
        "{line}"
    );
    assert_eq!(
        value_of(&line, "trace_flags"),
        // A trace started stand-alone: random + sampled.
        (Some("03".into()), 1),
        "{line}"
    );
    assert!(
        line.contains("decorated in span user_id=7 trace_id="),
        "own key-values first: {line}"
    );
}

#[test]
fn nested_spans_and_threads_get_their_own_ids_and_no_context_gets_none() {
    let pipe = setup();
    let outer = tracing::info_span!("outer");
    let inner_ids = outer.in_scope(|| {
        let inner = tracing::info_span!("inner");
        let ids = inner.in_scope(|| {
            log::warn!("decorated inner");
            TraceIds::from_span(&inner).expect("ids")
        });
        let worker = outer.clone();
        std::thread::spawn(move || worker.in_scope(|| log::warn!("decorated worker")))
            .join()
            .expect("worker");
        ids
    });
    log::warn!("decorated outside");
    let outer_ids = TraceIds::from_span(&outer).expect("ids");
    assert_eq!(outer_ids.trace_id(), inner_ids.trace_id());

    let inner_line = pipe.line_with("decorated inner");
    assert_eq!(
        value_of(&inner_line, "span_id").0,
        Some(inner_ids.span_id_hex().to_string())
    );
    let worker_line = pipe.line_with("decorated worker");
    assert_eq!(
        value_of(&worker_line, "span_id").0,
        Some(outer_ids.span_id_hex().to_string())
    );
    assert_eq!(
        value_of(&worker_line, "trace_id").0,
        Some(outer_ids.trace_id_hex().to_string())
    );
    let outside = pipe.line_with("decorated outside");
    assert_eq!(value_of(&outside, "trace_id"), (None, 0), "{outside}");
}

#[test]
fn a_records_own_trace_id_is_kept_and_not_duplicated() {
    let pipe = setup();
    tracing::info_span!("s").in_scope(|| log::info!(trace_id = "legacy-id"; "decorated own key"));
    let line = pipe.line_with("decorated own key");
    assert_eq!(
        value_of(&line, "trace_id"),
        (Some("legacy-id".into()), 1),
        "{line}"
    );
    assert_eq!(value_of(&line, "span_id").1, 1, "{line}");
}

#[test]
fn ids_can_go_in_the_message_for_loggers_that_print_no_key_values() {
    let _global = setup();
    let pipe = Pipe::default();
    let logger = CorrelatedLogger::new(
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Info)
            .format_key_values(env_logger::fmt::hidden_kv_format)
            .target(Target::Pipe(Box::new(pipe.clone())))
            .build(),
    )
    .with_ids_in_message(true);
    let span = tracing::info_span!("s");
    let ids = span.in_scope(|| {
        log::info!(logger: &logger, "ids in message");
        TraceIds::from_span(&span).expect("ids")
    });
    log::info!(logger: &logger, "no context here");
    let line = pipe.line_with("ids in message");
    let expected = format!(
        "[trace_id={} span_id={}] ids in message",
        ids.trace_id_hex(),
        ids.span_id_hex()
    );
    assert!(line.ends_with(&expected), "{line}");
    let line = pipe.line_with("no context here");
    assert!(!line.contains("trace_id"), "{line}");
}
