//! Export mode end to end: the ids on each JSON line are the ids of the span
//! the collector received, over both OTLP transports, configured the way the
//! environment would configure it.
#![cfg(feature = "otlp")]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
mod support;

use std::time::{Duration, Instant};

use otlp_receiver::OtlpReceiver;
use support::{ids_of, Captured};
use tracing_correlation::{ExportConfig, JsonFormat};

fn lookup(vars: Vec<(&'static str, String)>) -> ExportConfig {
    ExportConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
}

/// Runs a small request tree through the builder and returns its lines.
fn run_request(config: ExportConfig) -> Vec<serde_json::Value> {
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .json(JsonFormat::new())
        .filter("info")
        .export(config)
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let request = tracing::info_span!("request", path = "/orders");
        let _r = request.enter();
        tracing::info!("accepted");
        for table in ["orders", "users"] {
            let query = tracing::info_span!("query", table);
            let _q = query.enter();
            tracing::info!(table, "querying");
        }
    });
    drop(dispatch);
    drop(guard); // flushes the exporter
    out.lines()
}

#[test]
fn line_ids_are_the_exported_span_ids_over_grpc_and_http() {
    for protocol in ["grpc", "http/protobuf"] {
        let receiver = OtlpReceiver::start();
        let endpoint = if protocol == "grpc" {
            receiver.grpc_endpoint()
        } else {
            receiver.http_base()
        };
        let lines = run_request(lookup(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
            ("OTEL_SERVICE_NAME", "orders-api".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=test".into(),
            ),
        ]));
        let spans = receiver.wait_for(3, Duration::from_secs(10));
        assert_eq!(spans.len(), 3, "{protocol}");
        assert_eq!(lines.len(), 3);
        let request = spans.iter().find(|s| s.name == "request").unwrap();
        assert_eq!(
            request.parent_span_id, "",
            "{protocol}: the request is a root"
        );
        assert_eq!(
            request.resource.get("service.name").map(String::as_str),
            Some("orders-api")
        );
        assert_eq!(
            request
                .resource
                .get("deployment.environment")
                .map(String::as_str),
            Some("test")
        );
        let accepted = lines.iter().find(|l| l["message"] == "accepted").unwrap();
        assert_eq!(
            ids_of(accepted),
            Some((
                request.trace_id.clone(),
                request.span_id.clone(),
                "01".into()
            )),
            "{protocol}"
        );
        for line in lines.iter().filter(|l| l["message"] == "querying") {
            let table = line["table"].as_str().unwrap();
            let (trace_id, span_id, _) = ids_of(line).unwrap();
            let span = spans
                .iter()
                .find(|s| s.span_id == span_id)
                .unwrap_or_else(|| panic!("{protocol}: no exported span {span_id} for {table}"));
            assert_eq!(span.name, "query");
            assert_eq!(span.trace_id, trace_id);
            assert_eq!(
                span.parent_span_id, request.span_id,
                "{protocol}: query's parent is the request"
            );
        }
    }
}

#[test]
fn ratio_zero_exports_nothing_but_lines_keep_ids_with_flags_00() {
    let receiver = OtlpReceiver::start();
    let lines = run_request(lookup(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base()),
        ("OTEL_TRACES_SAMPLER", "traceidratio".into()),
        ("OTEL_TRACES_SAMPLER_ARG", "0".into()),
    ]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.store().spans().is_empty());
    assert_eq!(lines.len(), 3);
    let trace = ids_of(&lines[0]).unwrap().0;
    for line in &lines {
        let (trace_id, span_id, flags) = ids_of(line).expect("ids even when unsampled");
        assert_eq!(trace_id, trace);
        assert_eq!(span_id.len(), 16);
        assert_eq!(flags, "00");
    }
}

#[test]
fn disabled_sdk_and_exporter_none_stay_standalone() {
    for vars in [
        vec![("OTEL_SDK_DISABLED", "TRUE".to_string())],
        vec![("OTEL_TRACES_EXPORTER", "none".to_string())],
    ] {
        let receiver = OtlpReceiver::start();
        let mut vars = vars;
        vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base()));
        let lines = run_request(lookup(vars.clone()));
        std::thread::sleep(Duration::from_millis(300));
        assert!(receiver.store().spans().is_empty(), "{vars:?}");
        // Stand-alone ids: still a valid, shared trace.
        let trace = ids_of(&lines[0]).unwrap().0;
        assert!(lines.iter().all(|l| ids_of(l).unwrap().0 == trace));
    }
}

#[test]
fn an_unreachable_collector_never_holds_the_application() {
    // Bind then drop a listener: the port is closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .export(lookup(vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ]))
        .shutdown_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..50 {
            tracing::info_span!("work", i).in_scope(|| tracing::info!(i, "done"));
        }
    });
    drop(dispatch);
    drop(guard);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.lines().len(), 50, "every line was still written");
}
