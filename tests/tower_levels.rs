//! The two-services flow through the builder's pipeline at `RUST_LOG=warn`
//! and at `info`: propagation does not depend on the line filter. B receives
//! a traceparent in A's trace whose parent is A's client span; every line
//! written at either level carries the ids of its span.

mod support;

#[path = "../examples/shared/axum_app.rs"]
mod axum_app;

use std::sync::{Arc, Mutex};

use axum::http::{Request, StatusCode};
use serde_json::Value;
use support::Captured;
use tracing_correlation::{DefaultClientSpan, MakeRequestSpan, TraceIds, W3cPropagator};

#[derive(Debug)]
struct Hop {
    /// The traceparent A's response carried (A's request span).
    a_request: TraceIds,
    /// A's client span.
    client: TraceIds,
    /// What B received.
    received: Option<String>,
    lines: Vec<Value>,
}

fn call_through_a_and_b(level: &str) -> Hop {
    let out = Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter(level)
        .build()
        .expect("valid filter");
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
            let header = request
                .headers()
                .get("traceparent")
                .map(|h| h.to_str().unwrap().to_owned());
            received.lock().unwrap().push(header);
            default.make_span(request)
        }
    };
    let runtime = {
        let dispatch = dispatch.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
            .build()
            .unwrap()
    };
    let response = tracing::dispatcher::with_default(&dispatch, || {
        runtime.block_on(async {
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
        })
    });
    assert_eq!(response.status(), StatusCode::OK, "{level}");
    let a_request =
        tracing_correlation::parse_traceparent(response.headers()["traceparent"].to_str().unwrap())
            .expect("A answered with its request span's traceparent");
    let client = {
        let mut spans = client_spans.lock().unwrap();
        assert_eq!(spans.len(), 1, "{level}");
        let ids = TraceIds::from_span(&spans[0]).expect("the client span exists");
        tracing::dispatcher::with_default(&dispatch, || spans.clear());
        ids
    };
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1, "{level}");
    drop(runtime);
    Hop {
        a_request: TraceIds::from_span_context(&a_request).expect("valid"),
        client,
        received: received[0].clone(),
        lines: out.lines(),
    }
}

fn assert_propagated(hop: &Hop, level: &str) {
    assert_eq!(hop.client.trace_id(), hop.a_request.trace_id(), "{level}");
    assert_ne!(hop.client.span_id(), hop.a_request.span_id(), "{level}");
    assert_eq!(
        hop.received.as_deref(),
        Some(hop.client.to_string().as_str()),
        "{level}: B's parent is A's client span"
    );
}

#[test]
fn at_warn_the_middleware_propagates_exactly_as_at_info() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    let warn = call_through_a_and_b("warn");
    assert_propagated(&warn, "warn");
    // Nothing in the flow logs at WARN or above (no failure).
    let app_lines: Vec<&Value> = warn
        .lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("::axum_app"))
        })
        .collect();
    assert!(app_lines.is_empty(), "{app_lines:#?}");

    let info = call_through_a_and_b("info");
    assert_propagated(&info, "info");
    let trace = info.a_request.trace_id_hex().to_string();
    let app_lines: Vec<&Value> = info
        .lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("::axum_app"))
        })
        .collect();
    // A: "calling service B", "service B answered"; B: five fan-out lines.
    assert_eq!(app_lines.len(), 7, "{app_lines:#?}");
    for line in app_lines {
        assert_eq!(line["trace_id"], trace.as_str(), "{line}");
    }
}
