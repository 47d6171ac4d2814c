//! When another `log` logger is installed, init says so and installs nothing;
//! with `.log_bridge(false)` it succeeds and leaves that logger alone.
//! Installs globals: its own binary.

mod support;

use std::sync::Mutex;

use support::Captured;
use tracing_correlation::{builder, InitError};

struct Recorder(Mutex<Vec<String>>);

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut messages) = self.0.lock() {
            messages.push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[test]
fn another_log_logger_makes_init_fail_cleanly_and_can_be_kept() {
    log::set_logger(&RECORDER).expect("first log logger");
    log::set_max_level(log::LevelFilter::Info);

    let out = Captured::default();
    let error = builder()
        .writer(out.clone())
        .panic_hook(false)
        .try_init()
        .expect_err("the log slot is taken");
    assert!(
        matches!(error, InitError::LogLoggerAlreadySet(_)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("log_bridge(false)") && message.contains("CorrelatedLogger"),
        "says what to do: {message}"
    );
    assert!(
        !tracing::dispatcher::has_been_set(),
        "no tracing subscriber half-installed"
    );
    assert_eq!(
        log::max_level(),
        log::LevelFilter::Info,
        "log::max_level untouched"
    );

    let _guard = builder()
        .writer(out.clone())
        .panic_hook(false)
        .log_bridge(false)
        .try_init()
        .expect("without the bridge");
    log::info!("to the recorder");
    tracing::info!("to the json writer");
    assert_eq!(*RECORDER.0.lock().expect("lock"), ["to the recorder"]);
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["message"], "to the json writer");
}
