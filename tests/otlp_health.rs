//! Export health against a dead collector that comes back: exactly one
//! failure report and exactly one recovery report on stderr, counters on
//! the guard, and none of the SDK's own diagnostics on the outputs. This
//! binary runs itself as the child, so that the child's stderr can be
//! counted and the SDK's batch thread logs to a global subscriber.
#![cfg(feature = "otlp")]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use otlp_receiver::OtlpReceiver;
use support::Captured;
use tracing_correlation::{ExportConfig, LoggingGuard, SignalHealth};

const CHILD: &str = "TRACING_CORRELATION_HEALTH_CHILD";
const PORT: &str = "TRACING_CORRELATION_HEALTH_PORT";

fn wait_until(guard: &LoggingGuard, what: &str, done: impl Fn(SignalHealth, SignalHealth) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(guard.export_health().traces, guard.export_health().logs) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            guard.export_health()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The child's side: a no-op unless started by the test below.
#[test]
fn child_entry() {
    let Ok(protocol) = std::env::var(CHILD) else {
        return;
    };
    println!(); // libtest wrote "test child_entry ... " without a newline
    let port: u16 = std::env::var(PORT).unwrap().parse().unwrap();
    let http: SocketAddr = ([127, 0, 0, 1], port).into();
    let endpoint = format!("http://{http}");
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.clone()),
        ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
    ];
    let config = ExportConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .with_export_timeout(Duration::from_secs(1));
    let out = Captured::default();
    let guard = tracing_correlation::builder()
        .writer(out.clone())
        // `info` lets the SDK's warnings and errors through the line filter:
        // only the exclusion of its targets keeps them off the output.
        .filter("info")
        .export(config)
        .shutdown_timeout(Duration::from_secs(5))
        .try_init()
        .unwrap();

    // The collector is down: three batches of each signal fail, one
    // report each.
    for (n, name) in ["a", "b", "c"].into_iter().enumerate() {
        tracing::info_span!("dead", name).in_scope(|| tracing::info!("while down"));
        wait_until(&guard, "a failed export", |spans, logs| {
            spans.failed > n as u64 && logs.failed > n as u64
        });
    }
    let health = guard.export_health();
    assert!(health.traces.failing && health.logs.failing);
    assert_eq!((health.traces.exported, health.logs.exported), (0, 0));

    // It comes back on the same port: two batches succeed, one report.
    let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
    let receiver = if protocol == "grpc" {
        OtlpReceiver::start_on(http, any_port)
    } else {
        OtlpReceiver::start_on(any_port, http)
    };
    for n in 1..=2_u64 {
        tracing::info_span!("alive", n).in_scope(|| tracing::info!("back"));
        wait_until(&guard, "a successful export", |spans, logs| {
            spans.exported >= n && logs.exported >= n
        });
    }
    let logs = guard.export_health().logs;
    assert_eq!((logs.failed, logs.exported, logs.failing), (3, 2, false));
    assert_eq!(receiver.wait_for_logs(2, Duration::from_secs(5)).len(), 2);
    let health = guard.export_health().traces;
    assert_eq!(
        (health.failed, health.exported, health.failing),
        (3, 2, false)
    );
    let names: Vec<String> = receiver
        .wait_for(2, Duration::from_secs(5))
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["alive", "alive"]);
    // No line came from the SDK's own diagnostics: only the five events.
    let lines = out.lines();
    assert_eq!(lines.len(), 5, "{}", out.text());
    for line in &lines {
        assert_eq!(line["target"], "otlp_health");
    }
    println!("CHILD-DONE {health:?}");
    drop(guard);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_dead_collector_is_reported_once_and_its_recovery_once() {
    for protocol in ["http/protobuf", "grpc"] {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, protocol)
            .env(PORT, free_port().to_string())
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "50")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("CHILD-DONE"),
            "{protocol}: child failed:\n{stdout}\n{stderr}"
        );
        let reports: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("tracing-correlation: "))
            .collect();
        let failures: Vec<&&str> = reports
            .iter()
            .filter(|line| line.contains(r#""message":"span export failed;"#))
            .collect();
        let recoveries: Vec<&&str> = reports
            .iter()
            .filter(|line| line.contains(r#""message":"span export recovered""#))
            .collect();
        assert_eq!(failures.len(), 1, "{protocol}: {stderr}");
        assert_eq!(recoveries.len(), 1, "{protocol}: {stderr}");
        let count = |needle: &str| reports.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(
            count(r#""message":"log export failed;"#),
            1,
            "{protocol}: {stderr}"
        );
        assert_eq!(
            count(r#""message":"log export recovered""#),
            1,
            "{protocol}: {stderr}"
        );
        // Each report is one JSON object after the prefix.
        for line in failures.iter().chain(&recoveries) {
            let json: serde_json::Value =
                serde_json::from_str(line.trim_start_matches("tracing-correlation: ")).unwrap();
            assert_eq!(json["signal"], "span");
        }
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(
                failures[0].trim_start_matches("tracing-correlation: ")
            )
            .unwrap()["lost"],
            "1"
        );
        // No SDK line reached stdout, with or without a message.
        assert!(
            !stdout.lines().any(|line| line.contains("opentelemetry")),
            "{protocol}: {stdout}"
        );
    }
}

#[test]
fn sdk_drop_reports_become_counts_and_never_lines() {
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("trace")
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        // What opentelemetry_sdk's internal logs emit (its `otel_warn!`).
        tracing::warn!(
            target: "opentelemetry_sdk",
            name = "BatchSpanProcessor.SpanDroppingStarted",
            message = "BatchSpanProcessor dropped a Span due to queue full."
        );
        tracing::warn!(
            target: "opentelemetry_sdk",
            name = "BatchLogProcessor.LogsDropped",
            dropped_logs_count = 42_u64,
            max_queue_size = 2048_u64,
        );
        tracing::info!("an application line");
    });
    let health = guard.export_health();
    assert_eq!(health.traces.dropped, 1, "at least one, as far as is known");
    assert_eq!(health.logs.dropped, 42);
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{}", out.text());
    assert_eq!(lines[0]["message"], "an application line");
}
