//! `OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION=gzip` over both transports: the
//! receiver sees `Content-Encoding: gzip` / `grpc-encoding: gzip`, decodes
//! the spans, and refuses uncompressed requests when it requires gzip.
#![cfg(feature = "otlp")]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
mod support;

use std::time::Duration;

use otlp_receiver::{OtlpReceiver, SeenRequest, Transport};
use support::Captured;
use tracing_correlation::{ExportConfig, OtlpCompression};

fn config(vars: Vec<(&'static str, String)>) -> ExportConfig {
    ExportConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
}

fn endpoint(receiver: &OtlpReceiver, protocol: &str) -> String {
    if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_base()
    }
}

/// Exports two spans and returns once the guard has flushed them.
fn export_two_spans(config: ExportConfig) {
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(Captured::default())
        .filter("info")
        .export(config.with_export_timeout(Duration::from_secs(2)))
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let _outer = tracing::info_span!("outer").entered();
        let _inner = tracing::info_span!("inner").entered();
    });
    drop(dispatch);
    drop(guard);
}

fn transport(protocol: &str) -> Transport {
    if protocol == "grpc" {
        Transport::Grpc
    } else {
        Transport::Http
    }
}

#[test]
fn gzip_is_sent_when_asked_over_both_transports() {
    for protocol in ["grpc", "http/protobuf"] {
        for variable in [
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        ] {
            let receiver = OtlpReceiver::start_requiring_gzip();
            export_two_spans(config(vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint(&receiver, protocol)),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
                (variable, "gzip".to_owned()),
            ]));
            let spans = receiver.wait_for(2, Duration::from_secs(10));
            let mut names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, ["inner", "outer"], "{protocol} {variable}");
            assert_eq!(
                receiver.store().requests(),
                [SeenRequest {
                    transport: transport(protocol),
                    signal: "traces",
                    encoding: "gzip".to_owned(),
                    accepted: true,
                }],
                "{protocol} {variable}"
            );
        }
    }
}

#[test]
fn uncompressed_is_refused_by_a_receiver_that_requires_gzip() {
    for protocol in ["grpc", "http/protobuf"] {
        let receiver = OtlpReceiver::start_requiring_gzip();
        export_two_spans(config(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint(&receiver, protocol)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            // The signal's own variable wins over the generic one.
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none".to_owned()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ]));
        let requests = receiver.store().requests();
        assert!(!requests.is_empty(), "{protocol}: the export was attempted");
        for request in &requests {
            assert_eq!(request.encoding, "", "{protocol}");
            assert!(!request.accepted, "{protocol}");
        }
        assert!(receiver.store().spans().is_empty(), "{protocol}");

        // The same receiver without the requirement decodes plain requests.
        let plain = OtlpReceiver::start();
        export_two_spans(config(vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint(&plain, protocol)),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ]));
        assert_eq!(plain.wait_for(2, Duration::from_secs(10)).len(), 2);
        assert_eq!(plain.store().requests()[0].encoding, "", "{protocol}");
    }
}

#[test]
fn an_unknown_algorithm_is_a_warning_not_silence() {
    let config = config(vec![(
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "brotli".to_owned(),
    )]);
    assert_eq!(config.compression(), OtlpCompression::None);
    assert_eq!(config.warnings().len(), 1);
    assert_eq!(
        config.warnings()[0].to_string(),
        "ignoring OTEL_EXPORTER_OTLP_COMPRESSION=\"brotli\": expected `gzip` or `none` \
         (zstd is not built in); sending uncompressed"
    );
}
