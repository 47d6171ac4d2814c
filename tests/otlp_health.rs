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

fn wait_until(guard: &LoggingGuard, what: &str, done: impl Fn(SignalHealth) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done(guard.export_health().traces) {
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

    // The collector is down: three batches fail, one report.
    for (n, name) in ["a", "b", "c"].into_iter().enumerate() {
        tracing::info_span!("dead", name).in_scope(|| {});
        wait_until(&guard, "a failed export", |h| h.failed > n as u64);
    }
    assert!(guard.export_health().traces.failing);
    assert_eq!(guard.export_health().traces.exported, 0);

    // It comes back on the same port: two batches succeed, one report.
    let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
    let receiver = if protocol == "grpc" {
        OtlpReceiver::start_on(http, any_port)
    } else {
        OtlpReceiver::start_on(any_port, http)
    };
    for n in 1..=2_u64 {
        tracing::info_span!("alive", n).in_scope(|| {});
        wait_until(&guard, "a successful export", |h| h.exported >= n);
    }
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
    // No line came from the SDK's own diagnostics.
    assert_eq!(out.text(), "", "nothing but the SDK logged");
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
