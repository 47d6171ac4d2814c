//! Events exported as OTLP log records, decoded by the in-process receiver:
//! each record's trace id, span id and flags equal its JSON line's, in both
//! id modes (logs only, so ids are minted stand-alone; spans and logs, so
//! ids are the SDK's), over both transports, with gzip on and off; field
//! types are kept; the OTLP output has its own filter.
#![cfg(feature = "otlp")]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
mod support;

use std::time::Duration;

use otlp_receiver::{Attr, OtlpReceiver, ReceivedLog};
use support::{ids_of, Captured};
use tracing_correlation::{ExportConfig, OtlpLogs};

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk on fire")
    }
}

impl std::error::Error for Boom {}

fn config(vars: Vec<(&'static str, String)>) -> ExportConfig {
    ExportConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
}

/// Logs a small request and returns its JSON lines, once the guard has
/// flushed every exporter.
fn run(config: ExportConfig, logs: Option<OtlpLogs>) -> Vec<serde_json::Value> {
    let out = Captured::default();
    let mut builder = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .export(config.with_export_timeout(Duration::from_secs(2)))
        .shutdown_timeout(Duration::from_secs(5));
    if let Some(logs) = logs {
        builder = builder.otlp_logs(logs);
    }
    let (dispatch, guard) = builder.build().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("before any span");
        let request = tracing::info_span!("request", path = "/orders");
        let entered = request.enter();
        tracing::info!(
            count = 3_u32,
            signed = -2_i64,
            ratio = 0.25,
            ok = true,
            who = "ann",
            huge = u64::MAX,
            "accepted"
        );
        {
            let query = tracing::info_span!("query");
            let _q = query.enter();
            tracing::warn!(table = "orders", "slow");
            tracing::error!(error = &Boom as &dyn std::error::Error, "write failed");
            tracing::debug!("filtered out everywhere");
        }
        drop(entered);
        // Outside every span, for an explicit parent: its ids, not the
        // (empty) current context's.
        tracing::info!(parent: &request, "explicit parent");
    });
    drop(dispatch);
    drop(guard);
    out.lines()
}

fn record_for<'a>(records: &'a [ReceivedLog], message: &str) -> &'a ReceivedLog {
    records
        .iter()
        .find(|r| r.body == Some(Attr::str(message)))
        .unwrap_or_else(|| panic!("no record {message:?} in {records:#?}"))
}

#[test]
fn records_carry_the_lines_ids_in_both_modes_over_both_transports_with_and_without_gzip() {
    for export_spans in [false, true] {
        for protocol in ["grpc", "http/protobuf"] {
            for gzip in [false, true] {
                let case = format!("spans={export_spans} {protocol} gzip={gzip}");
                let receiver = if gzip {
                    OtlpReceiver::start_requiring_gzip()
                } else {
                    OtlpReceiver::start()
                };
                let endpoint = if protocol == "grpc" {
                    receiver.grpc_endpoint()
                } else {
                    receiver.http_base()
                };
                let mut vars = vec![
                    ("OTEL_LOGS_EXPORTER", "otlp".to_owned()),
                    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", protocol.to_owned()),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
                    ("OTEL_SERVICE_NAME", "checkout".to_owned()),
                    ("OTEL_TRACES_EXPORTER", "none".to_owned()),
                ];
                if export_spans {
                    vars.pop();
                    vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint));
                } else if protocol == "grpc" {
                    vars.push(("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint));
                } else {
                    vars.push((
                        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                        format!("{endpoint}/v1/logs"),
                    ));
                }
                if gzip {
                    vars.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()));
                }
                let lines = run(config(vars), None);
                assert_eq!(lines.len(), 5, "{case}: {lines:#?}");
                assert!(
                    ids_of(&lines[4]).is_some(),
                    "{case}: the explicit parent's ids"
                );
                let records = receiver.wait_for_logs(5, Duration::from_secs(10));
                assert_eq!(records.len(), 5, "{case}: {records:#?}");
                for request in receiver.store().requests() {
                    assert!(request.accepted, "{case}: {request:?}");
                    assert_eq!(request.encoding, if gzip { "gzip" } else { "" }, "{case}");
                }
                let spans =
                    receiver.wait_for(if export_spans { 2 } else { 0 }, Duration::from_secs(5));
                assert_eq!(spans.len(), if export_spans { 2 } else { 0 }, "{case}");

                for line in &lines {
                    let message = line["message"].as_str().unwrap();
                    let record = record_for(&records, message);
                    if let Some((trace_id, span_id, flags)) = ids_of(line) {
                        assert_eq!(record.trace_id, trace_id, "{case} {message}");
                        assert_eq!(record.span_id, span_id, "{case} {message}");
                        let flags = u32::from_str_radix(&flags, 16).unwrap();
                        assert_eq!(record.flags, flags, "{case} {message}");
                        if export_spans {
                            assert!(
                                spans.iter().any(|s| s.span_id == span_id),
                                "{case}: the record's span was exported"
                            );
                        }
                    } else {
                        assert_eq!(message, "before any span", "{case}");
                        let ids = (record.trace_id.as_str(), record.span_id.as_str());
                        assert_eq!(ids, ("", ""), "{case}");
                    }
                    assert_eq!(
                        record.severity_text,
                        line["level"].as_str().unwrap(),
                        "{case}"
                    );
                    assert!(record.time_unix_nano > 0 && record.observed_time_unix_nano > 0);
                    assert_eq!(
                        record.scope_name, "otlp_log_export",
                        "the target names the logger"
                    );
                    assert_eq!(record.scope_version, env!("CARGO_PKG_VERSION"));
                    assert_eq!(record.resource["service.name"], "checkout");
                    assert_eq!(
                        record.attributes["code.file.path"],
                        Attr::str("tests/otlp_log_export.rs")
                    );
                    assert!(matches!(record.attributes["code.line.number"], Attr::Int(n) if n > 0));
                }
            }
        }
    }
}

#[test]
fn field_types_severity_and_exceptions_are_kept() {
    let receiver = OtlpReceiver::start();
    run(
        config(vec![(
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            format!("{}/v1/logs", receiver.http_base()),
        )]),
        Some(OtlpLogs::new()),
    );
    let records = receiver.wait_for_logs(5, Duration::from_secs(10));
    let accepted = record_for(&records, "accepted");
    assert_eq!(
        (accepted.severity_number, accepted.severity_text.as_str()),
        (9, "INFO")
    );
    let a = &accepted.attributes;
    assert_eq!(a["count"], Attr::Int(3));
    assert_eq!(a["signed"], Attr::Int(-2));
    assert_eq!(a["ratio"], Attr::Double(0.25));
    assert_eq!(a["ok"], Attr::Bool(true));
    assert_eq!(a["who"], Attr::str("ann"));
    assert_eq!(a["huge"], Attr::str("18446744073709551615"));
    assert!(!a.contains_key("message"), "the message is the body");
    assert_eq!(
        a.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "code.file.path",
            "code.line.number",
            "count",
            "huge",
            "ok",
            "ratio",
            "signed",
            "who"
        ]
    );

    let slow = record_for(&records, "slow");
    assert_eq!(
        (slow.severity_number, slow.severity_text.as_str()),
        (13, "WARN")
    );
    assert_eq!(slow.attributes["table"], Attr::str("orders"));

    let failed = record_for(&records, "write failed");
    assert_eq!(
        (failed.severity_number, failed.severity_text.as_str()),
        (17, "ERROR")
    );
    assert_eq!(
        failed.attributes["exception.message"],
        Attr::str("disk on fire")
    );
    assert_eq!(failed.attributes["error"], Attr::str("disk on fire"));
}

#[test]
fn the_otlp_output_has_its_own_filter() {
    let receiver = OtlpReceiver::start();
    let lines = run(
        config(vec![("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base())])
            .with_mode(tracing_correlation::ExportMode::Standalone),
        Some(OtlpLogs::new().filter("warn")),
    );
    assert_eq!(lines.len(), 5, "the lines keep their own filter");
    // The guard flushed: whatever was exported has arrived.
    let records = receiver.store().logs();
    let mut bodies: Vec<_> = records.iter().filter_map(|r| r.body.clone()).collect();
    bodies.sort_by_key(|b| format!("{b:?}"));
    assert_eq!(bodies, [Attr::str("slow"), Attr::str("write failed")]);
    assert!(
        receiver.store().spans().is_empty(),
        "spans stay stand-alone"
    );
}
