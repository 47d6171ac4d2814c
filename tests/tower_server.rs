//! The server middleware end to end on loopback, in both id modes, against
//! the example's own axum app: continued traces, baggage, malformed headers,
//! the response `traceparent`, and untrusted callers.

mod support;

#[path = "../examples/shared/axum_app.rs"]
mod axum_app;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Request, StatusCode};
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use serde_json::Value;
use support::{FixedTime, Harness, Mode, MODES};
use tracing_correlation::opentelemetry_sdk::trace::SpanData;
use tracing_correlation::{JsonFormat, TraceIds, TrustIncoming, W3cPropagator};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const BAGGAGE: &str = "tenant=acme,user_id=u%2042,secret=s3cr3t";

fn caller_traceparent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

/// The middleware uses the global propagator unless told otherwise, as
/// `init_json_logging` installs it; the tests install the same one.
fn harness(mode: Mode) -> Harness {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    Harness::with_format(
        mode,
        JsonFormat::new()
            .with_timer(FixedTime)
            .with_baggage_fields(["tenant", "user_id"]),
    )
}

/// Runs `f` on a current-thread runtime whose threads (the blocking pool
/// included) all log to the harness' subscriber.
fn run<F: std::future::Future>(h: &Harness, f: impl FnOnce() -> F) -> F::Output {
    let dispatch = h.dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
        .unwrap();
    h.run(|| runtime.block_on(f()))
}

/// Serves the example's routes behind `layer` until the test ends.
async fn serve<L>(layer: L) -> SocketAddr
where
    L: tower_layer::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower_service::Service<Request<axum::body::Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower_service::Service<Request<axum::body::Body>>>::Response:
        axum::response::IntoResponse + 'static,
    <L::Service as tower_service::Service<Request<axum::body::Body>>>::Future: Send + 'static,
{
    axum_app::serve(axum_app::routes().layer(layer), std::future::pending())
        .await
        .unwrap()
}

/// The `(trace id, span id)` of a response's `traceparent`.
fn response_ids(response: &axum::http::Response<String>) -> (String, String) {
    let value = response.headers()["traceparent"].to_str().unwrap();
    let span_context = tracing_correlation::parse_traceparent(value).unwrap();
    let ids = TraceIds::from_span_context(&span_context).unwrap();
    (
        ids.trace_id_hex().to_string(),
        ids.span_id_hex().to_string(),
    )
}

/// The lines the app logged (hyper-util's own TRACE events are left out).
fn app_lines(h: &Harness) -> Vec<Value> {
    h.lines()
        .into_iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("::axum_app"))
        })
        .collect()
}

fn request_lines<'a>(lines: &'a [Value], route: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["span"]["name"] == "request" && l["span"]["http.route"] == route)
        .collect()
}

/// Waits for the request span's export (it ends when the server drops the
/// response future, which may be just after the client got the response).
fn exported_request(h: &Harness, name: &str) -> SpanData {
    for _ in 0..200 {
        let spans = h.exporter.as_ref().unwrap().get_finished_spans().unwrap();
        if let Some(span) = spans.into_iter().find(|s| s.name == name) {
            return span;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("span {name} was never exported");
}

#[test]
fn a_trusted_caller_is_continued_with_its_baggage_and_gets_the_request_spans_ids() {
    for mode in MODES {
        let h = harness(mode);
        let responses = run(&h, || async {
            let addr = serve(axum_app::server_layer().response_traceparent(true)).await;
            let headers = [
                ("traceparent", &*caller_traceparent()),
                ("baggage", BAGGAGE),
            ];
            let fanout = axum_app::send_get(addr, "/fanout", &headers).await.unwrap();
            let blocking = axum_app::send_get(addr, "/blocking", &headers)
                .await
                .unwrap();
            [fanout, blocking]
        });
        let lines = app_lines(&h);
        // fanout: 1 + 3 joined parts + 1 spawned part; blocking: 2.
        assert_eq!(lines.len(), 7, "{mode:?}: {lines:#?}");
        for line in &lines {
            assert_eq!(line["trace_id"], TRACE, "{mode:?}: {line}");
            assert_eq!(line["trace_flags"], "01");
            assert_eq!(line["tenant"], "acme", "{mode:?}: {line}");
            assert_eq!(line["user_id"], "u 42", "{mode:?}: {line}");
            assert!(line.get("secret").is_none(), "{line}");
        }
        assert!(!h.out.text().contains("s3cr3t"));

        for (response, route, logged_in_request_span) in [
            (&responses[0], "/fanout", 1),
            (&responses[1], "/blocking", 2),
        ] {
            assert_eq!(response.status(), StatusCode::OK);
            let (trace, request_span) = response_ids(response);
            assert_eq!(trace, TRACE, "{mode:?}");
            assert_ne!(request_span, CALLER_SPAN, "{mode:?}: a fresh span id");
            // The response's traceparent is the request span's ids: the ids
            // on the lines logged directly in the handler.
            let in_span = request_lines(&lines, route);
            assert_eq!(in_span.len(), logged_in_request_span, "{mode:?} {route}");
            for line in in_span {
                assert_eq!(line["span_id"], request_span, "{mode:?}");
                assert_eq!(line["span"]["otel.kind"], "server");
                assert_eq!(line["span"]["http.request.method"], "GET");
                assert_eq!(line["span"]["url.path"], route);
            }
            if mode == Mode::Otel {
                let exported = exported_request(&h, &format!("GET {route}"));
                assert_eq!(exported.span_kind, SpanKind::Server);
                assert_eq!(
                    exported.span_context.trace_id(),
                    TraceId::from_hex(TRACE).unwrap()
                );
                assert_eq!(exported.span_context.span_id().to_string(), request_span);
                assert_eq!(
                    exported.parent_span_id,
                    SpanId::from_hex(CALLER_SPAN).unwrap()
                );
                assert!(exported.parent_span_is_remote);
                let status = exported
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "http.response.status_code")
                    .map(|kv| kv.value.to_string());
                assert_eq!(status.as_deref(), Some("200"));
            }
        }
        // Parts ran in child spans of the request span, in the same trace.
        let parts: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "part done")
            .collect();
        assert_eq!(parts.len(), 4);
        let fanout_span = response_ids(&responses[0]).1;
        assert!(parts.iter().all(|l| l["span_id"] != fanout_span));
    }
}

#[test]
fn a_malformed_traceparent_gets_a_fresh_valid_trace_and_the_request_is_served() {
    for mode in MODES {
        for malformed in [
            format!("00-{}-{CALLER_SPAN}-01", TRACE.to_uppercase()),
            format!("0-{TRACE}-{CALLER_SPAN}-01"),
            format!("00-{}-{CALLER_SPAN}-01", &TRACE[1..]),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            "garbage".to_owned(),
        ] {
            let h = harness(mode);
            let response = run(&h, || async {
                let addr = serve(axum_app::server_layer().response_traceparent(true)).await;
                axum_app::send_get(addr, "/blocking", &[("traceparent", &malformed)])
                    .await
                    .unwrap()
            });
            assert_eq!(response.status(), StatusCode::OK, "{malformed}");
            assert_eq!(response.body(), "500500");
            let (trace, span) = response_ids(&response);
            assert_ne!(trace.to_lowercase(), TRACE, "{mode:?} {malformed}");
            let lines = app_lines(&h);
            assert_eq!(lines.len(), 2);
            for line in &lines {
                assert_eq!(line["trace_id"], trace, "{mode:?} {malformed}");
                assert_eq!(line["span_id"], span);
            }
            if mode == Mode::Otel {
                let exported = exported_request(&h, "GET /blocking");
                assert_eq!(exported.parent_span_id, SpanId::INVALID, "{malformed}");
            }
        }
    }
}

#[test]
fn an_untrusted_caller_starts_a_new_trace_linked_to_its_own_without_its_baggage() {
    fn internal_only(request: &Request<axum::body::Body>) -> bool {
        request.headers().contains_key("x-internal")
    }
    // The closure form of the switch, checked once per mode: trusted when
    // the header is there, untrusted otherwise.
    let _: &dyn TrustIncoming<axum::body::Body> = &internal_only;
    for mode in MODES {
        let h = harness(mode);
        let (untrusted, trusted) = run(&h, || async {
            let layer = axum_app::server_layer()
                .response_traceparent(true)
                .propagator(W3cPropagator::new())
                .trust_incoming(internal_only);
            let addr = serve(layer).await;
            let traceparent = caller_traceparent();
            let untrusted = axum_app::send_get(
                addr,
                "/blocking",
                &[("traceparent", &*traceparent), ("baggage", BAGGAGE)],
            )
            .await
            .unwrap();
            let trusted = axum_app::send_get(
                addr,
                "/fanout",
                &[("traceparent", &*traceparent), ("x-internal", "1")],
            )
            .await
            .unwrap();
            (untrusted, trusted)
        });
        assert_eq!(untrusted.status(), StatusCode::OK);
        let (trace, span) = response_ids(&untrusted);
        assert_ne!(trace, TRACE, "{mode:?}: a new trace");
        assert_eq!(
            response_ids(&trusted).0,
            TRACE,
            "{mode:?}: trusted continues"
        );

        let lines = app_lines(&h);
        let blocking = request_lines(&lines, "/blocking");
        assert_eq!(blocking.len(), 2);
        for line in blocking {
            assert_eq!(line["trace_id"], trace, "{mode:?}");
            assert_eq!(line["span_id"], span);
            assert_eq!(line["span"]["link.trace_id"], TRACE, "{mode:?}: {line}");
            assert_eq!(line["span"]["link.span_id"], CALLER_SPAN);
            assert!(line.get("tenant").is_none(), "untrusted baggage: {line}");
        }
        for line in request_lines(&lines, "/fanout") {
            assert!(line["span"].get("link.trace_id").is_none());
        }
        if mode == Mode::Otel {
            let exported = exported_request(&h, "GET /blocking");
            assert_eq!(exported.parent_span_id, SpanId::INVALID);
            assert_eq!(exported.span_context.trace_id().to_string(), trace);
            let linked: Vec<_> = exported
                .links
                .links
                .iter()
                .map(|l| l.span_context.clone())
                .collect();
            assert_eq!(linked.len(), 1, "{linked:?}");
            assert_eq!(linked[0].trace_id(), TraceId::from_hex(TRACE).unwrap());
            assert_eq!(linked[0].span_id(), SpanId::from_hex(CALLER_SPAN).unwrap());
        }
    }
}

#[test]
fn the_response_traceparent_is_off_by_default() {
    let h = harness(Mode::Standalone);
    let response = run(&h, || async {
        let addr = serve(axum_app::server_layer()).await;
        axum_app::send_get(
            addr,
            "/blocking",
            &[("traceparent", &*caller_traceparent())],
        )
        .await
        .unwrap()
    });
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("traceparent").is_none());
    let lines = app_lines(&h);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["trace_id"] == TRACE));
}

#[test]
fn a_filtered_out_request_span_still_continues_the_callers_trace() {
    for mode in MODES {
        let h = harness(mode);
        let response = run(&h, || async {
            let layer = axum_app::server_layer()
                .response_traceparent(true)
                .make_span(|_: &Request<axum::body::Body>| tracing::Span::none());
            let addr = serve(layer).await;
            let headers = [
                ("traceparent", &*caller_traceparent()),
                ("baggage", BAGGAGE),
            ];
            axum_app::send_get(addr, "/fanout", &headers).await.unwrap()
        });
        assert_eq!(response.status(), StatusCode::OK);
        // No span, so no ids to return.
        assert!(response.headers().get("traceparent").is_none());
        let lines = app_lines(&h);
        assert_eq!(lines.len(), 5, "{mode:?}");
        for line in &lines {
            assert_eq!(line["trace_id"], TRACE, "{mode:?}: {line}");
            assert_eq!(line["tenant"], "acme", "{mode:?}: {line}");
        }
        // Logged with no span of ours entered: the caller's span id.
        let fanning = lines
            .iter()
            .find(|l| l["message"] == "fanning out")
            .unwrap();
        assert_eq!(fanning["span_id"], CALLER_SPAN, "{mode:?}");
    }
}
