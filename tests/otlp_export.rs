//! End-to-end OTLP export against a real in-process receiver (gRPC and
//! HTTP/protobuf). Every test uses a scoped subscriber and its own provider; no
//! global state is installed.
#![cfg(feature = "otlp")]
#![allow(clippy::similar_names)]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use opentelemetry::trace::{TraceContextExt as _, TraceFlags, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::{OtlpReceiver, Transport};
use tracing_correlation::{
    build_tracer_provider, shutdown_with_timeout, ExportConfig, ExportMode, OtlpError,
};
use tracing_subscriber::layer::SubscriberExt as _;

const WAIT: Duration = Duration::from_secs(10);
const SHUTDOWN: Duration = Duration::from_secs(10);

fn config(vars: &[(&str, String)]) -> ExportConfig {
    ExportConfig::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
}

/// Ids as the application saw them through `Context::current()`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeenSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    sampled: bool,
}

fn current_ids() -> (String, String, TraceFlags) {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    assert!(sc.is_valid(), "no valid span context inside a span");
    (
        sc.trace_id().to_string(),
        sc.span_id().to_string(),
        sc.trace_flags(),
    )
}

/// Two traces: `request` → (`db_query` → `decode`, `render`), and `background`.
fn record_workload(provider: &SdkTracerProvider) -> Vec<SeenSpan> {
    let tracer = provider.tracer("otlp-export-test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let mut seen = Vec::new();
    let mut record = |name: &str, parent: &str| {
        let (trace_id, span_id, flags) = current_ids();
        seen.push(SeenSpan {
            name: name.to_owned(),
            trace_id,
            span_id: span_id.clone(),
            parent_span_id: parent.to_owned(),
            sampled: flags.is_sampled(),
        });
        span_id
    };
    tracing::subscriber::with_default(subscriber, || {
        {
            let request = tracing::info_span!("request");
            let _request = request.enter();
            let request_id = record("request", "");
            {
                let db = tracing::info_span!("db_query");
                let _db = db.enter();
                let db_id = record("db_query", &request_id);
                let decode = tracing::info_span!("decode");
                let _decode = decode.enter();
                record("decode", &db_id);
            }
            let render = tracing::info_span!("render");
            let _render = render.enter();
            record("render", &request_id);
        }
        let background = tracing::info_span!("background");
        let _background = background.enter();
        record("background", "");
    });
    seen
}

fn assert_same_trees(seen: &[SeenSpan], receiver: &OtlpReceiver, transport: Transport) {
    let received = receiver.wait_for(seen.len(), WAIT);
    assert_eq!(received.len(), seen.len(), "received {received:#?}");
    assert!(received.iter().all(|span| span.transport == transport));

    let expected: BTreeSet<_> = seen
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.trace_id.clone(),
                s.span_id.clone(),
                s.parent_span_id.clone(),
            )
        })
        .collect();
    let actual: BTreeSet<_> = received
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.trace_id.clone(),
                s.span_id.clone(),
                s.parent_span_id.clone(),
            )
        })
        .collect();
    assert_eq!(actual, expected);

    // Structure: one trace per root, children share their root's trace id.
    let trace_of = |name: &str| &seen.iter().find(|s| s.name == name).unwrap().trace_id;
    for child in ["db_query", "decode", "render"] {
        assert_eq!(trace_of(child), trace_of("request"));
    }
    assert_ne!(trace_of("background"), trace_of("request"));
    assert!(seen.iter().all(|s| s.sampled));
}

fn assert_resource(receiver: &OtlpReceiver) {
    for span in receiver.store().spans() {
        let resource = &span.resource;
        assert_eq!(
            resource.get("service.name").map(String::as_str),
            Some("checkout")
        );
        assert_eq!(
            resource.get("team").map(String::as_str),
            Some("payments, eu")
        );
        assert_eq!(
            resource
                .get("deployment.environment.name")
                .map(String::as_str),
            Some("staging")
        );
        assert_eq!(
            resource.get("telemetry.sdk.language").map(String::as_str),
            Some("rust")
        );
        assert_eq!(
            resource.get("telemetry.sdk.name").map(String::as_str),
            Some("opentelemetry")
        );
        assert!(resource.contains_key("telemetry.sdk.version"));
    }
}

fn resource_vars() -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_SERVICE_NAME", "checkout".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging,team=payments%2C%20eu,service.name=ignored"
                .to_owned(),
        ),
    ]
}

#[test]
fn http_protobuf_export_carries_the_ids_seen_in_context() {
    let receiver = OtlpReceiver::start();
    let mut vars = resource_vars();
    vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base()));
    let config = config(&vars);
    assert_eq!(config.mode(), ExportMode::Otlp);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());

    let provider = build_tracer_provider(&config).unwrap();
    let seen = record_workload(&provider);
    shutdown_with_timeout(&provider, SHUTDOWN).unwrap();

    assert_same_trees(&seen, &receiver, Transport::Http);
    assert_resource(&receiver);
}

#[test]
fn grpc_export_carries_the_ids_seen_in_context() {
    let receiver = OtlpReceiver::start();
    let mut vars = resource_vars();
    vars.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()));
    vars.push(("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc".to_owned()));
    let config = config(&vars);

    let provider = build_tracer_provider(&config).unwrap();
    let seen = record_workload(&provider);
    shutdown_with_timeout(&provider, SHUTDOWN).unwrap();

    assert_same_trees(&seen, &receiver, Transport::Grpc);
    assert_resource(&receiver);
}

#[test]
fn traces_specific_endpoint_is_used_as_is() {
    let receiver = OtlpReceiver::start();
    let config = config(&[
        // A wrong generic endpoint proves the traces-specific one wins.
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:9".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", receiver.http_base()),
        ),
    ]);
    let provider = build_tracer_provider(&config).unwrap();
    let seen = record_workload(&provider);
    shutdown_with_timeout(&provider, SHUTDOWN).unwrap();
    assert_same_trees(&seen, &receiver, Transport::Http);
}

#[test]
fn ratio_zero_exports_nothing_but_context_still_has_unsampled_ids() {
    let receiver = OtlpReceiver::start();
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base()),
        ("OTEL_TRACES_SAMPLER", "traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0".to_owned()),
    ]);
    let provider = build_tracer_provider(&config).unwrap();
    let seen = record_workload(&provider);
    shutdown_with_timeout(&provider, SHUTDOWN).unwrap();

    assert_eq!(seen.len(), 5);
    for span in &seen {
        assert!(!span.sampled, "{span:?} should carry flags 00");
        assert_ne!(span.trace_id, "0".repeat(32));
        assert_ne!(span.span_id, "0".repeat(16));
    }
    let traces: BTreeSet<_> = seen.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 2, "children keep their root's trace id");
    assert!(receiver.wait_for(1, Duration::from_millis(500)).is_empty());
}

#[test]
fn standalone_configuration_builds_no_provider() {
    let config = config(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318".to_owned(),
        ),
        ("OTEL_SDK_DISABLED", "true".to_owned()),
    ]);
    let error = build_tracer_provider(&config).unwrap_err();
    assert!(matches!(error, OtlpError::ExportNotRequested));
    assert!(error.to_string().contains("OTEL_SDK_DISABLED"));
}

#[test]
fn invalid_endpoint_is_a_typed_error() {
    let config = config(&[(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://bad host:4318/v1/traces".to_owned(),
    )]);
    let error = build_tracer_provider(&config).unwrap_err();
    assert!(matches!(error, OtlpError::Exporter { .. }), "{error:?}");
    assert!(error.to_string().contains("bad host"), "{error}");
}

/// A port nothing listens on: connections are refused.
fn closed_port_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A port that accepts connections and never answers.
fn silent_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

fn assert_bounded_shutdown(vars: &[(&str, String)]) -> OtlpError {
    const BOUND: Duration = Duration::from_millis(500);
    const MARGIN: Duration = Duration::from_millis(300);
    let provider = build_tracer_provider(&config(vars)).unwrap();
    let seen = record_workload(&provider);
    assert_eq!(seen.len(), 5);

    let started = Instant::now();
    let result = shutdown_with_timeout(&provider, BOUND);
    let elapsed = started.elapsed();
    assert!(elapsed < BOUND + MARGIN, "shutdown took {elapsed:?}");
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            OtlpError::ShutdownTimedOut { .. } | OtlpError::ExportFailed(_)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("collector"), "{error}");
    error
}

#[test]
fn shutdown_is_bounded_when_the_http_collector_refuses_connections() {
    assert_bounded_shutdown(&[("OTEL_EXPORTER_OTLP_ENDPOINT", closed_port_endpoint())]);
}

#[test]
fn shutdown_is_bounded_when_the_grpc_collector_refuses_connections() {
    assert_bounded_shutdown(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", closed_port_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
    ]);
}

#[test]
fn shutdown_is_bounded_when_the_collector_never_answers() {
    for protocol in ["http/protobuf", "grpc"] {
        let error = assert_bounded_shutdown(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", silent_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ]);
        assert!(
            matches!(error, OtlpError::ShutdownTimedOut { .. }),
            "{protocol}: {error:?}"
        );
    }
}

#[test]
fn second_shutdown_reports_already_shut_down() {
    let receiver = OtlpReceiver::start();
    let config = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base())]);
    let provider = build_tracer_provider(&config).unwrap();
    shutdown_with_timeout(&provider, SHUTDOWN).unwrap();
    assert!(matches!(
        shutdown_with_timeout(&provider, SHUTDOWN),
        Err(OtlpError::AlreadyShutDown)
    ));
}

/// The exporter has its own runtime, so a blocked `current_thread` runtime of
/// the application cannot starve it, for either transport.
#[tokio::test(flavor = "current_thread")]
async fn export_works_from_inside_a_current_thread_runtime() {
    let receiver = OtlpReceiver::start();
    for (protocol, endpoint, transport) in [
        ("grpc", receiver.grpc_endpoint(), Transport::Grpc),
        ("http/protobuf", receiver.http_base(), Transport::Http),
    ] {
        let before = receiver.store().spans().len();
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ]);
        let provider = build_tracer_provider(&config).unwrap();
        let seen = record_workload(&provider);
        shutdown_with_timeout(&provider, SHUTDOWN).unwrap();
        let received = receiver.wait_for(before + seen.len(), WAIT);
        assert_eq!(received.len(), before + seen.len(), "{protocol}");
        assert!(received[before..].iter().all(|s| s.transport == transport));
    }
}

/// Dropping the last handle inside an async context must not panic (a tokio
/// runtime dropped there would) and still flushes through the SDK's own drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_provider_inside_a_runtime_does_not_panic() {
    let receiver = OtlpReceiver::start();
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
    ]);
    let provider = build_tracer_provider(&config).unwrap();
    let seen = record_workload(&provider);
    drop(provider);
    assert_eq!(receiver.wait_for(seen.len(), WAIT).len(), seen.len());
}

/// `with_export_timeout` reaches the exporter: against a silent collector the
/// final export gives up after it, well before the shutdown bound, and the
/// failure is reported as one `ExportFailed`.
#[test]
fn export_timeout_override_reaches_the_exporter() {
    for protocol in ["http/protobuf", "grpc"] {
        let config = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", silent_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ])
        .with_export_timeout(Duration::from_millis(200));
        let provider = build_tracer_provider(&config).unwrap();
        record_workload(&provider);

        let started = Instant::now();
        let error = shutdown_with_timeout(&provider, Duration::from_secs(5)).unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            matches!(error, OtlpError::ExportFailed(_)),
            "{protocol}: {error:?}"
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "{protocol}: took {elapsed:?}"
        );
    }
}

/// With time to spare, a refused connection is reported (the SDK alone would
/// return `Ok` from shutdown) and reported once: a second shutdown does not
/// repeat it.
#[test]
fn unreachable_collector_is_reported_once() {
    let provider = build_tracer_provider(&config(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        closed_port_endpoint(),
    )]))
    .unwrap();
    record_workload(&provider);
    let error = shutdown_with_timeout(&provider, Duration::from_secs(8)).unwrap_err();
    assert!(matches!(error, OtlpError::ExportFailed(_)), "{error:?}");
    assert!(matches!(
        shutdown_with_timeout(&provider, Duration::from_secs(1)),
        Err(OtlpError::AlreadyShutDown)
    ));
}
