//! `send_traced()` over loopback, in both id modes: the server receives a
//! `traceparent` whose trace id is the caller's and whose parent id is the
//! client span's; the client span carries OpenTelemetry's HTTP client fields.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, get};
use axum::Router;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value as OtelValue;
use support::{Captured, FixedTime, Mode, MODES};
use tracing::{Dispatch, Instrument as _};
use tracing_correlation::opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SpanData,
};
use tracing_correlation::{
    CorrelationLayer, JsonFormat, RequestBuilderExt as _, TraceIds, W3cPropagator,
};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The ids current while a span named `client_request` is entered: what
/// every line logged inside the client span would carry.
#[derive(Clone, Default)]
struct ClientSpanIds(Arc<Mutex<Vec<Option<TraceIds>>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ClientSpanIds {
    fn on_enter(&self, id: &tracing::span::Id, ctx: LayerContext<'_, S>) {
        if ctx
            .span(id)
            .is_some_and(|span| span.name() == "client_request")
        {
            self.0.lock().unwrap().push(TraceIds::current());
        }
    }
}

impl ClientSpanIds {
    /// The one client span's ids (it is entered once per poll).
    fn only(&self) -> TraceIds {
        let seen = self.0.lock().unwrap();
        assert!(!seen.is_empty(), "the client span was entered");
        assert!(seen.iter().all(|ids| *ids == seen[0]), "{seen:?}");
        seen[0].expect("the client span has ids")
    }
}

/// A subscriber in `mode` with the client span observer outermost, so that
/// it sees the context the id layers attached on enter.
struct Setup {
    dispatch: Dispatch,
    client: ClientSpanIds,
    exporter: Option<InMemorySpanExporter>,
    _provider: Option<SdkTracerProvider>,
}

fn setup(mode: Mode) -> Setup {
    let client = ClientSpanIds::default();
    macro_rules! fmt {
        () => {
            tracing_subscriber::fmt::layer()
                .event_format(JsonFormat::new().with_timer(FixedTime))
                .with_writer(Captured::default())
        };
    }
    match mode {
        Mode::Standalone => Setup {
            dispatch: Dispatch::new(
                tracing_subscriber::registry()
                    .with(CorrelationLayer::new())
                    .with(fmt!())
                    .with(client.clone()),
            ),
            client,
            exporter: None,
            _provider: None,
        },
        Mode::Otel => {
            use opentelemetry::trace::TracerProvider as _;
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            // A closure, not `Metadata::is_span`: the filter must accept
            // metadata of any lifetime.
            #[allow(clippy::redundant_closure_for_method_calls)]
            let otel = tracing_correlation::tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(filter_fn(|meta| meta.is_span()));
            Setup {
                dispatch: Dispatch::new(
                    tracing_subscriber::registry()
                        .with(otel)
                        .with(CorrelationLayer::with_opentelemetry())
                        .with(fmt!())
                        .with(client.clone()),
                ),
                client,
                exporter: Some(exporter),
                _provider: Some(provider),
            }
        }
    }
}

impl Setup {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tracing::dispatcher::with_default(&self.dispatch, || runtime.block_on(f))
    }

    fn exported(&self, name: &str) -> SpanData {
        let spans = self
            .exporter
            .as_ref()
            .expect("otel mode")
            .get_finished_spans()
            .unwrap();
        let mut matching: Vec<_> = spans.into_iter().filter(|s| s.name == name).collect();
        assert_eq!(matching.len(), 1, "exactly one exported span named {name}");
        matching.remove(0)
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

/// `/echo` answers with the trace headers it received; `/fail` with a 500.
async fn serve() -> SocketAddr {
    async fn echo(headers: HeaderMap) -> String {
        let get = |name: &str| {
            headers
                .get(name)
                .map_or("-", |value| value.to_str().unwrap_or("?"))
                .to_owned()
        };
        format!("{} {}", get("traceparent"), get("tracestate"))
    }
    let app = Router::new().route("/echo", get(echo)).route(
        "/fail",
        any(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "no") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[test]
fn the_server_sees_the_callers_trace_under_the_client_span() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let setup = setup(mode);
        let (caller, received, port) = setup.block_on(async {
            let addr = serve().await;
            async {
                let caller = TraceIds::current().expect("request span has ids");
                let response = reqwest::Client::new()
                    .get(format!(
                        "http://alice:s3cret@127.0.0.1:{}/echo?token=abc#frag",
                        addr.port()
                    ))
                    .send_traced()
                    .await
                    .expect("loopback request");
                assert_eq!(response.status(), StatusCode::OK);
                let received = response.text().await.unwrap();
                (caller, received, addr.port())
            }
            .instrument(tracing::info_span!("request"))
            .await
        });
        let client = setup.client.only();
        assert_eq!(client.trace_id(), caller.trace_id(), "{mode:?}");
        assert_ne!(client.span_id(), caller.span_id(), "{mode:?}");
        assert_eq!(
            received,
            format!(
                "00-{}-{}-{} -",
                caller.trace_id_hex(),
                client.span_id_hex(),
                // Stand-alone roots carry the W3C random flag; the SDK's do not.
                if mode == Mode::Standalone { "03" } else { "01" }
            ),
            "{mode:?}: traceparent = caller's trace, client span as parent; no tracestate"
        );

        if mode == Mode::Otel {
            let request = setup.exported("request");
            let span = setup.exported("GET");
            assert_eq!(span.span_kind, SpanKind::Client);
            assert_eq!(span.span_context.span_id(), client.span_id());
            assert_eq!(span.span_context.trace_id(), caller.trace_id());
            assert_eq!(span.parent_span_id, request.span_context.span_id());
            assert_eq!(span.status, Status::Unset);
            let expected = [
                ("http.request.method", OtelValue::from("GET")),
                // reqwest moves user info into an `Authorization` header
                // when building; the query value is redacted, the fragment
                // dropped.
                (
                    "url.full",
                    OtelValue::from(format!("http://127.0.0.1:{port}/echo?token=REDACTED")),
                ),
                ("server.address", OtelValue::from("127.0.0.1")),
                ("server.port", OtelValue::I64(i64::from(port))),
                ("http.response.status_code", OtelValue::I64(200)),
            ];
            for (key, value) in expected {
                assert_eq!(attribute(&span, key), Some(value), "{key}");
            }
            assert_eq!(attribute(&span, "error.type"), None);
        }
    }
}

#[test]
fn a_5xx_answer_and_a_refused_connection_mark_the_client_span_as_failed() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    let setup = setup(Mode::Otel);
    let (status, refused) = setup.block_on(async {
        let addr = serve().await;
        // A port nothing listens on: bind one, then free it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = reqwest::Client::new();
        // The client span is a child of the span current at the call.
        let status = async {
            client
                .post(format!("http://{addr}/fail"))
                .send_traced()
                .await
        }
        .instrument(tracing::info_span!("fails"))
        .await
        .expect("an answer")
        .status();
        let refused = async {
            client
                .delete(format!("http://{closed}/gone"))
                .send_traced()
                .await
        }
        .instrument(tracing::info_span!("refused"))
        .await
        .expect_err("nothing listens");
        (status, refused)
    });
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(refused.is_connect(), "{refused:?}");

    let post = setup.exported("POST");
    assert_eq!(
        attribute(&post, "http.response.status_code"),
        Some(OtelValue::I64(500))
    );
    assert_eq!(attribute(&post, "error.type"), Some(OtelValue::from("500")));
    assert!(
        matches!(post.status, Status::Error { .. }),
        "{:?}",
        post.status
    );

    let delete = setup.exported("DELETE");
    assert_eq!(attribute(&delete, "http.response.status_code"), None);
    assert_eq!(
        attribute(&delete, "error.type"),
        Some(OtelValue::from("connect"))
    );
    assert!(
        matches!(delete.status, Status::Error { .. }),
        "{:?}",
        delete.status
    );
    assert_eq!(
        delete.parent_span_id,
        setup.exported("refused").span_context.span_id()
    );
}

#[test]
fn a_request_that_cannot_be_built_fails_like_send_and_opens_no_span() {
    let setup = setup(Mode::Standalone);
    let error = setup
        .block_on(reqwest::Client::new().get("not a url").send_traced())
        .expect_err("invalid URL");
    assert!(error.is_builder(), "{error:?}");
    assert!(setup.client.0.lock().unwrap().is_empty());
}

#[test]
fn each_request_writes_one_completion_line_in_its_client_span() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ((), captured) = runtime.block_on(tracing_correlation::testing::capture_future(async {
        let addr = serve().await;
        let client = reqwest::Client::new();
        // The client span is a child of the span current at the call.
        async {
            client
                .get(format!("http://{addr}/echo"))
                .send_traced()
                .await
        }
        .instrument(tracing::info_span!("ok_call"))
        .await
        .unwrap();
        async {
            client
                .post(format!("http://{addr}/fail"))
                .send_traced()
                .await
        }
        .instrument(tracing::info_span!("failed_call"))
        .await
        .unwrap();
    }));
    let lines: Vec<&serde_json::Value> = captured
        .lines()
        .iter()
        .filter(|l| l["target"] == "tracing_correlation::reqwest")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let client_spans: Vec<_> = captured
        .spans()
        .iter()
        .filter(|s| s.name == "client_request")
        .collect();
    assert_eq!(client_spans.len(), 2);
    assert_eq!(lines[0]["level"], "DEBUG");
    assert_eq!(lines[0]["message"], "request completed");
    assert_eq!(lines[0]["http.response.status_code"], 200);
    assert_eq!(lines[1]["level"], "ERROR");
    assert_eq!(lines[1]["message"], "request failed");
    assert_eq!(lines[1]["http.response.status_code"], 500);
    assert_eq!(lines[1]["error.type"], "500");
    for (line, span) in lines.iter().zip(&client_spans) {
        assert_eq!(line["span_id"], span.span_id.as_str());
        assert_eq!(line["trace_id"], span.trace_id.as_str());
        assert!(line["http.client.request.duration"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(
        client_spans[0].parent_span_id.as_deref(),
        Some(captured.span("ok_call").span_id.as_str())
    );
    assert_eq!(
        client_spans[1].parent_span_id.as_deref(),
        Some(captured.span("failed_call").span_id.as_str())
    );
}
