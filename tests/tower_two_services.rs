//! Two services on loopback, in both id modes: A's client layer carries A's
//! trace to B, whose request span is the child of A's client span.

mod support;

#[path = "../examples/shared/axum_app.rs"]
mod axum_app;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Request, StatusCode};
use opentelemetry::trace::{SpanId, SpanKind};
use serde_json::Value;
use support::{Harness, Mode, MODES};
use tracing_correlation::opentelemetry_sdk::trace::SpanData;
use tracing_correlation::{DefaultClientSpan, MakeRequestSpan, TraceIds, W3cPropagator};

fn run<F: std::future::Future>(h: &Harness, f: impl FnOnce() -> F) -> F::Output {
    let dispatch = h.dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
        .unwrap();
    h.run(|| runtime.block_on(f()))
}

fn exported(h: &Harness, name: &str) -> SpanData {
    for _ in 0..200 {
        let spans = h.exporter.as_ref().unwrap().get_finished_spans().unwrap();
        if let Some(span) = spans.into_iter().find(|s| s.name == name) {
            return span;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let names: Vec<_> = h
        .exporter
        .as_ref()
        .unwrap()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    panic!("span {name} was never exported: {names:?}");
}

#[test]
fn b_continues_as_trace_under_as_client_span() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        // Keep A's client spans, and the traceparent B received, to compare.
        let client_spans = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let record_client = {
            let client_spans = client_spans.clone();
            move |request: &Request<String>| {
                let span = DefaultClientSpan::new().make_span(request);
                client_spans.lock().unwrap().push(span.clone());
                span
            }
        };
        let record_received = {
            let received = received.clone();
            let mut default = axum_app::server_layer_span();
            move |request: &Request<axum::body::Body>| {
                let header = request.headers().get("traceparent").cloned();
                received.lock().unwrap().push(header);
                default.make_span(request)
            }
        };

        let response = run(&h, || async {
            let b = axum_app::serve(
                axum_app::routes().layer(axum_app::server_layer().make_span(record_received)),
                std::future::pending(),
            )
            .await
            .unwrap();
            let a = axum_app::serve(
                axum_app::service_a(b, axum_app::traced_client(record_client))
                    .layer(axum_app::server_layer().response_traceparent(true)),
                std::future::pending(),
            )
            .await
            .unwrap();
            axum_app::send_get(a, "/call", &[]).await.unwrap()
        });
        assert_eq!(response.status(), StatusCode::OK, "{mode:?}");
        assert_eq!(response.body(), "30");
        let a_request = tracing_correlation::parse_traceparent(
            response.headers()["traceparent"].to_str().unwrap(),
        )
        .unwrap();
        let trace = a_request.trace_id().to_string();

        // One client span, in A's trace, distinct from A's request span.
        let mut client_spans = client_spans.lock().unwrap();
        assert_eq!(client_spans.len(), 1);
        let client = TraceIds::from_span(&client_spans[0]).expect("entered client span has ids");
        // Our handles keep the client span (and so A's request span) open.
        // Dropped under the subscriber: the registry releases a closed
        // span's parent through the current dispatcher.
        h.run(|| client_spans.clear());
        assert_eq!(client.trace_id(), a_request.trace_id(), "{mode:?}");
        assert_ne!(client.span_id(), a_request.span_id());
        // B received exactly the client span's context.
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 1);
        let header = received[0].as_ref().expect("B received a traceparent");
        assert_eq!(header.to_str().unwrap(), client.to_string(), "{mode:?}");

        // Every line of both services is in A's trace.
        let lines: Vec<Value> = h
            .lines()
            .into_iter()
            .filter(|l| {
                l["target"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("::axum_app"))
            })
            .collect();
        // A: "calling service B", "service B answered"; B: five fan-out lines.
        assert_eq!(lines.len(), 7, "{lines:#?}");
        for line in &lines {
            assert_eq!(line["trace_id"], trace, "{mode:?}: {line}");
        }
        let b_request_span: Vec<&Value> = lines
            .iter()
            .filter(|l| l["message"] == "fanning out")
            .collect();
        assert_eq!(b_request_span.len(), 1);
        assert_ne!(b_request_span[0]["span_id"], client.span_id_hex().as_str());

        if mode == Mode::Otel {
            let a_span = exported(&h, "GET /call");
            let client_span = exported(&h, "GET");
            let b_span = exported(&h, "GET /fanout");
            assert_eq!(a_span.parent_span_id, SpanId::INVALID);
            assert_eq!(a_span.span_context.span_id(), a_request.span_id());
            assert_eq!(client_span.span_kind, SpanKind::Client);
            assert_eq!(client_span.span_context.span_id(), client.span_id());
            assert_eq!(client_span.parent_span_id, a_request.span_id());
            assert_eq!(b_span.span_kind, SpanKind::Server);
            assert_eq!(
                b_span.parent_span_id,
                client.span_id(),
                "B's parent is A's client span"
            );
            assert_eq!(b_span.span_context.trace_id(), a_request.trace_id());
            assert_eq!(
                b_span.span_context.span_id().to_string(),
                b_request_span[0]["span_id"].as_str().unwrap()
            );
        }
    }
}
