//! Installs the global subscriber, so it runs alone in its own binary.

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{ids_of, parse_strict};
use tracing_correlation::{InitError, Output, TraceIds, WriteMode};

/// A writer slower than the logging loop, so lines pile up in the buffer.
struct SlowWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for SlowWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() % 7 == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const LINES: usize = 3000;

#[test]
fn init_once_flush_on_drop_and_panics_logged_with_ids() {
    let written = Arc::new(Mutex::new(Vec::new()));
    let guard = tracing_correlation::builder()
        .default_output(
            Output::writer(SlowWriter(written.clone()))
                .mode(WriteMode::Block)
                .capacity(4096),
        )
        .filter("info")
        .propagators(true)
        .try_init()
        .expect("first init succeeds");

    // A second init is an error, never a panic, and changes nothing.
    let second = tracing_correlation::init_json_logging();
    assert!(
        matches!(second, Err(InitError::AlreadyInitialized)),
        "{second:?}"
    );
    let message = second.unwrap_err().to_string();
    assert!(message.contains("already installed"), "{message}");

    let span = tracing::info_span!("bulk");
    let bulk_ids = span.in_scope(|| {
        for i in 0..LINES {
            tracing::info!(i, "line");
        }
        TraceIds::current().unwrap()
    });

    // The global propagator injects the ids the lines carry.
    let mut headers = std::collections::HashMap::new();
    span.in_scope(|| {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&opentelemetry::Context::current(), &mut headers);
        });
    });
    assert_eq!(headers.get("traceparent"), Some(&bulk_ids.to_string()));

    // A panic in a thread is logged with that thread's span ids.
    let job = tracing::info_span!("job");
    let job_ids = job.in_scope(|| TraceIds::current().unwrap());
    let result = std::thread::spawn(move || {
        let _e = job.enter();
        panic!("boom {}", 42);
    })
    .join();
    assert!(result.is_err());

    drop(guard);
    let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
    let lines: Vec<_> = text.lines().map(parse_strict).collect();
    let numbered: Vec<_> = lines.iter().filter(|l| l["message"] == "line").collect();
    assert_eq!(
        numbered.len(),
        LINES,
        "lossless: every line was flushed on drop"
    );
    for (expected, line) in numbered.iter().enumerate() {
        assert_eq!(line["i"], expected);
        assert_eq!(
            ids_of(line),
            Some((
                bulk_ids.trace_id_hex().to_string(),
                bulk_ids.span_id_hex().to_string(),
                "01".into()
            ))
        );
    }
    let panic_line = lines
        .iter()
        .find(|l| l["target"] == "panic")
        .expect("the panic was logged");
    assert_eq!(panic_line["level"], "ERROR");
    assert_eq!(panic_line["message"], "panicked: boom 42");
    assert_eq!(panic_line["trace_id"], job_ids.trace_id_hex().as_str());
    assert_eq!(panic_line["span_id"], job_ids.span_id_hex().as_str());
    assert!(panic_line["panic.location"]
        .as_str()
        .unwrap()
        .contains("global_init.rs"));
}
