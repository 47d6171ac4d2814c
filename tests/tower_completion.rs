//! The server layer's completion line and health-check filter, end to end
//! on loopback in both id modes: one line per request, at the level its
//! outcome calls for, inside the request span (its exact ids), for
//! responses, for a panicking handler and for a client that gives up.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Extensions, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http::request::Parts;
use opentelemetry::trace::{SpanId, TraceId};
use serde_json::Value;
use support::{FixedTime, Harness, Mode, MODES};
use tracing::{Level, Span};
use tracing_correlation::{
    CorrelationLayer, DefaultServerSpan, HttpClientLayer, HttpServerLayer, JsonFormat,
    MakeRequestSpan, RequestOutcome, TraceIds, W3cPropagator,
};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::Layer as _;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const TARGET: &str = "tracing_correlation::tower";

fn traceparent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

fn run<F: std::future::Future>(h: &Harness, f: impl FnOnce() -> F) -> F::Output {
    let dispatch = h.dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
        .unwrap();
    h.run(|| runtime.block_on(f()))
}

/// The default server span (with axum's route), keeping a handle on every
/// request span so the test can read its ids.
#[derive(Clone)]
struct Recording {
    inner: DefaultServerSpan,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

fn matched_path(extensions: &Extensions) -> Option<&str> {
    extensions.get::<MatchedPath>().map(MatchedPath::as_str)
}

impl Recording {
    fn new() -> Self {
        Self {
            inner: DefaultServerSpan::new().with_route(matched_path),
            spans: Arc::default(),
        }
    }

    /// The ids of the request span opened for `path`.
    fn ids(&self, path: &str) -> TraceIds {
        let spans = self.spans.lock().unwrap();
        let matching: Vec<_> = spans.iter().filter(|(p, _)| p == path).collect();
        assert_eq!(matching.len(), 1, "one request span for {path}");
        TraceIds::from_span(&matching[0].1).expect("an entered request span has ids")
    }

    fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }

    /// Releases the handles under the subscriber (the registry frees a
    /// closed span through the current dispatcher).
    fn clear(&self, h: &Harness) {
        h.run(|| self.spans.lock().unwrap().clear());
    }
}

impl MakeRequestSpan<Body> for Recording {
    fn make_span(&mut self, request: &Request<Body>) -> Span {
        let span = self.inner.make_span(request);
        let path = request.uri().path().to_owned();
        self.spans.lock().unwrap().push((path, span.clone()));
        span
    }

    fn route<'r>(&self, request: &'r Request<Body>) -> Option<&'r str> {
        self.inner.route(request)
    }
}

async fn ok() -> &'static str {
    tracing::info!("handled");
    "ok"
}

async fn bad() -> StatusCode {
    StatusCode::BAD_REQUEST
}

async fn fail() -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn panics() -> &'static str {
    panic!("handler panicked on purpose");
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "too late"
}

async fn health() -> &'static str {
    tracing::info!("health probed");
    "up"
}

fn app(layer: HttpServerLayer<Recording>) -> Router {
    Router::new()
        .route("/items/{id}", get(ok))
        .route("/bad", get(bad))
        .route("/fail", get(fail))
        .route("/panic", get(panics))
        .route("/slow", get(slow))
        .route("/health", get(health))
        .layer(layer)
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A GET with the caller's `traceparent`; `None` when the connection broke
/// (the panicking handler).
async fn get_status(addr: SocketAddr, path: &str) -> Option<StatusCode> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<String>();
    let request = Request::get(format!("http://{addr}{path}"))
        .header("traceparent", traceparent())
        .body(String::new())
        .unwrap();
    client.request(request).await.ok().map(|r| r.status())
}

fn completion_lines(h: &Harness) -> Vec<Value> {
    h.lines()
        .into_iter()
        .filter(|l| l["target"] == TARGET)
        .collect()
}

/// The one completion line whose request span is `ids`.
fn line_of<'a>(lines: &'a [Value], ids: &TraceIds) -> &'a Value {
    let matching: Vec<_> = lines
        .iter()
        .filter(|l| l["span_id"] == ids.span_id_hex().as_str())
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one completion line for {ids}: {lines:#?}"
    );
    matching[0]
}

/// What every completion line of a request from our caller has: the request
/// span's exact ids, inside that span, the method and a duration.
fn assert_in_request_span(line: &Value, ids: &TraceIds, mode: Mode) {
    assert_eq!(line["trace_id"], TRACE, "{mode:?}: {line}");
    assert_eq!(line["span_id"], ids.span_id_hex().as_str(), "{mode:?}");
    assert_eq!(line["trace_flags"], "01");
    assert_eq!(line["span"]["name"], "request", "{line}");
    assert_eq!(line["http.request.method"], "GET", "{line}");
    let duration = line["http.server.request.duration"]
        .as_f64()
        .unwrap_or_else(|| panic!("duration in seconds: {line}"));
    assert!((0.0..10.0).contains(&duration), "{line}");
}

#[test]
fn each_outcome_writes_exactly_one_line_at_its_level_inside_the_request_span() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let recording = Recording::new();
        let statuses = run(&h, || async {
            let addr = serve(app(HttpServerLayer::new().make_span(recording.clone()))).await;
            let mut statuses = Vec::new();
            for path in ["/items/7", "/missing", "/bad", "/fail", "/panic"] {
                statuses.push(get_status(addr, path).await);
            }
            statuses
        });
        assert_eq!(
            statuses,
            [
                Some(StatusCode::OK),
                Some(StatusCode::NOT_FOUND),
                Some(StatusCode::BAD_REQUEST),
                Some(StatusCode::INTERNAL_SERVER_ERROR),
                None,
            ],
            "{mode:?}"
        );
        let lines = completion_lines(&h);
        assert_eq!(lines.len(), 5, "{mode:?}: one line per request: {lines:#?}");

        // (path, level, status, route, error.type, message)
        let expected = [
            (
                "/items/7",
                "INFO",
                Some(200),
                Some("/items/{id}"),
                None,
                "request completed",
            ),
            (
                "/missing",
                "WARN",
                Some(404),
                None,
                None,
                "request completed",
            ),
            (
                "/bad",
                "WARN",
                Some(400),
                Some("/bad"),
                None,
                "request completed",
            ),
            (
                "/fail",
                "ERROR",
                Some(500),
                Some("/fail"),
                Some("500"),
                "request completed",
            ),
            (
                "/panic",
                "ERROR",
                None,
                Some("/panic"),
                Some("panic"),
                "request panicked",
            ),
        ];
        for (path, level, status, route, error_type, message) in expected {
            let ids = recording.ids(path);
            assert_eq!(ids.trace_id(), TraceId::from_hex(TRACE).unwrap(), "{path}");
            let line = line_of(&lines, &ids);
            assert_in_request_span(line, &ids, mode);
            assert_eq!(line["level"], level, "{mode:?} {path}: {line}");
            assert_eq!(line["message"], message, "{path}");
            assert_eq!(line["http.response.status_code"].as_i64(), status, "{path}");
            assert_eq!(line["http.route"].as_str(), route, "{path}: {line}");
            assert_eq!(line["error.type"].as_str(), error_type, "{path}: {line}");
            assert!(line.get("rpc.system").is_none(), "{line}");
            // The span records the same outcome.
            assert_eq!(line["span"]["http.response.status_code"].as_i64(), status);
            assert_eq!(line["span"]["error.type"].as_str(), error_type, "{line}");
        }
        // The handler's own line is in the same span as its completion line.
        let handled: Vec<Value> = h
            .lines()
            .into_iter()
            .filter(|l| l["message"] == "handled")
            .collect();
        assert_eq!(handled.len(), 1);
        assert_eq!(
            handled[0]["span_id"],
            recording.ids("/items/7").span_id_hex().as_str()
        );

        let (fail_ids, panic_ids) = (recording.ids("/fail"), recording.ids("/panic"));
        // Our handles keep the spans open: release them to get them exported.
        recording.clear(&h);
        if mode == Mode::Otel {
            assert_exported_failures(&h, &fail_ids, &panic_ids);
        }
    }
}

/// The exported spans of `/fail` and `/panic`: the caller's children, with
/// the outcome as attributes and status.
fn assert_exported_failures(h: &Harness, fail_ids: &TraceIds, panic_ids: &TraceIds) {
    let failed = h.exported("GET /fail");
    assert_eq!(
        failed.parent_span_id,
        SpanId::from_hex(CALLER_SPAN).unwrap()
    );
    assert_eq!(failed.span_context.span_id(), fail_ids.span_id());
    let attribute = |name: &str| {
        failed
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == name)
            .map(|kv| kv.value.clone())
    };
    // An integer attribute, as the conventions want (not "500").
    assert_eq!(
        attribute("http.response.status_code"),
        Some(opentelemetry::Value::I64(500))
    );
    assert_eq!(attribute("error.type"), Some("500".into()));
    let panicked = h.exported("GET /panic");
    assert_eq!(panicked.span_context.span_id(), panic_ids.span_id());
    assert_eq!(
        panicked.status,
        opentelemetry::trace::Status::error(""),
        "{:?}",
        panicked.status
    );
}

#[test]
fn a_client_that_gives_up_leaves_one_cancelled_line() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let recording = Recording::new();
        run(&h, || async {
            let addr = serve(app(HttpServerLayer::new().make_span(recording.clone()))).await;
            let gave_up =
                tokio::time::timeout(Duration::from_millis(200), get_status(addr, "/slow")).await;
            assert!(gave_up.is_err(), "the handler sleeps 30 s");
            // The server notices the closed connection and drops the future.
            for _ in 0..200 {
                if !completion_lines(&h).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let lines = completion_lines(&h);
        assert_eq!(lines.len(), 1, "{mode:?}: {lines:#?}");
        let ids = recording.ids("/slow");
        let line = line_of(&lines, &ids);
        assert_in_request_span(line, &ids, mode);
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "request cancelled");
        assert_eq!(line["error.type"], "cancelled");
        assert_eq!(line["http.route"], "/slow");
        assert!(line.get("http.response.status_code").is_none(), "{line}");
        recording.clear(&h);
    }
}

#[test]
fn the_line_can_be_switched_off_and_its_levels_chosen() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    let h = Harness::new(Mode::Standalone);
    let recording = Recording::new();
    run(&h, || async {
        let off = serve(app(HttpServerLayer::new()
            .make_span(recording.clone())
            .completion_line(false)))
        .await;
        assert_eq!(
            get_status(off, "/fail").await,
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        let custom = serve(app(HttpServerLayer::new()
            .make_span(recording.clone())
            .completion_level(|outcome: &RequestOutcome| match outcome {
                RequestOutcome::Http(StatusCode::NOT_FOUND) => Some(Level::DEBUG),
                RequestOutcome::Http(status) if status.is_success() => None,
                other => Some(other.default_level()),
            })))
        .await;
        assert_eq!(
            get_status(custom, "/missing").await,
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(get_status(custom, "/items/1").await, Some(StatusCode::OK));
        assert_eq!(
            get_status(custom, "/bad").await,
            Some(StatusCode::BAD_REQUEST)
        );
    });
    let lines = completion_lines(&h);
    let summary: Vec<(&str, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap(),
                l["http.response.status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    // Off: no line for the 500. Custom: 404 at DEBUG, none for the 200.
    assert_eq!(summary, [("DEBUG", 404), ("WARN", 400)]);
    // The span still records the outcome when the line is off.
    recording.clear(&h);
}

/// A subscriber whose spans all exist (correlation) while the fmt layer's
/// own filter writes only WARN and above — what the lead's pipeline does for
/// `RUST_LOG=warn`.
#[allow(clippy::redundant_closure_for_method_calls)] // the closure's lifetime is generic
fn warn_lines_harness(mode: Mode) -> Harness {
    let base = Harness::new(mode);
    let out = base.out.clone();
    macro_rules! lines {
        () => {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(JsonFormat::new().with_timer(FixedTime))
                .with_writer(out.clone())
                .with_filter(filter_fn(|meta| {
                    meta.is_span() || *meta.level() <= Level::WARN
                }))
        };
    }
    let dispatch = match mode {
        Mode::Standalone => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(CorrelationLayer::new())
                .with(lines!()),
        ),
        Mode::Otel => {
            use opentelemetry::trace::TracerProvider as _;
            let provider = base.provider.clone().unwrap();
            let otel = tracing_correlation::tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(filter_fn(|meta| meta.is_span()));
            tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(otel)
                    .with(CorrelationLayer::with_opentelemetry())
                    .with(lines!()),
            )
        }
    };
    Harness { dispatch, ..base }
}

#[test]
fn with_lines_filtered_at_warn_only_failures_are_written_with_their_ids() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = warn_lines_harness(mode);
        let recording = Recording::new();
        run(&h, || async {
            let addr = serve(app(HttpServerLayer::new().make_span(recording.clone()))).await;
            for path in ["/items/7", "/missing", "/bad", "/fail", "/panic"] {
                get_status(addr, path).await;
            }
        });
        let all = h.lines();
        // The handler's INFO line is filtered out; the INFO completion too.
        assert!(all.iter().all(|l| l["target"] == TARGET), "{all:#?}");
        let levels: Vec<(&str, &str)> = all
            .iter()
            .map(|l| (l["level"].as_str().unwrap(), l["message"].as_str().unwrap()))
            .collect();
        assert_eq!(
            levels,
            [
                ("WARN", "request completed"),
                ("WARN", "request completed"),
                ("ERROR", "request completed"),
                ("ERROR", "request panicked"),
            ],
            "{mode:?}"
        );
        for path in ["/missing", "/bad", "/fail", "/panic"] {
            let ids = recording.ids(path);
            assert_in_request_span(line_of(&all, &ids), &ids, mode);
        }
        assert_eq!(recording.count(), 5, "every request had its span");
        recording.clear(&h);
    }
}

fn probes(request: &Parts) -> bool {
    matches!(request.uri.path(), "/health" | "/ready")
}

#[test]
fn health_checks_get_no_span_no_line_and_no_context() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let recording = Recording::new();
        run(&h, || async {
            let layer = HttpServerLayer::new()
                .make_span(recording.clone())
                .skip_if(probes);
            let addr = serve(app(layer)).await;
            assert_eq!(get_status(addr, "/health").await, Some(StatusCode::OK));
            assert_eq!(get_status(addr, "/items/1").await, Some(StatusCode::OK));
        });
        // Only the traced request opened a span.
        assert_eq!(recording.count(), 1, "{mode:?}");
        let traced = recording.ids("/items/1");
        let lines = h.lines();
        let completions: Vec<_> = lines.iter().filter(|l| l["target"] == TARGET).collect();
        assert_eq!(completions.len(), 1, "{mode:?}: {completions:#?}");
        assert_eq!(completions[0]["span_id"], traced.span_id_hex().as_str());
        // The probe's handler ran with no span and without the caller's
        // context: its line has no ids at all.
        let probed: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "health probed")
            .collect();
        assert_eq!(probed.len(), 1);
        assert!(
            support::ids_of(probed[0]).is_none(),
            "{mode:?}: {}",
            probed[0]
        );
        assert!(probed[0].get("span").is_none(), "{}", probed[0]);
        if mode == Mode::Otel {
            let exported = h.exporter.as_ref().unwrap().get_finished_spans().unwrap();
            let names: Vec<_> = exported.iter().map(|s| s.name.to_string()).collect();
            assert!(!names.iter().any(|n| n.contains("health")), "{names:?}");
        }
        recording.clear(&h);
    }
}

#[test]
fn the_client_line_is_optional_and_treats_4xx_as_errors() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let recording = Recording::new();
        let (quiet, noisy) = run(&h, || async {
            let addr = serve(app(HttpServerLayer::new()
                .make_span(recording.clone())
                .completion_line(false)))
            .await;
            let call = |layer: HttpClientLayer| async move {
                use tower_layer::Layer as _;
                use tower_service::Service as _;
                let mut client = layer.layer(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http::<String>(),
                );
                let request = Request::get(format!("http://{addr}/missing"))
                    .body(String::new())
                    .unwrap();
                let span = tracing::info_span!("call");
                let response = span.in_scope(|| client.call(request)).await.unwrap();
                (response.status(), TraceIds::from_span(&span).unwrap())
            };
            let quiet = call(HttpClientLayer::new()).await;
            let noisy = call(HttpClientLayer::new().completion_line(true)).await;
            (quiet, noisy)
        });
        assert_eq!(quiet.0, StatusCode::NOT_FOUND);
        assert_eq!(noisy.0, StatusCode::NOT_FOUND);
        let lines = completion_lines(&h);
        assert_eq!(
            lines.len(),
            1,
            "{mode:?}: only the noisy client: {lines:#?}"
        );
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["span"]["name"], "client_request", "{line}");
        assert_eq!(line["error.type"], "404", "a client counts 4xx as errors");
        assert_eq!(line["http.response.status_code"], 404);
        assert!(
            line["http.client.request.duration"].as_f64().is_some(),
            "{line}"
        );
        // The line is the client span's: a child of `call`, in its trace.
        assert_eq!(
            line["trace_id"],
            noisy.1.trace_id_hex().as_str(),
            "{mode:?}"
        );
        assert_ne!(line["span_id"], noisy.1.span_id_hex().as_str());
        recording.clear(&h);
    }
}

/// The same at `RUST_LOG=warn` through the crate's own pipeline (spans exist
/// whatever the line filter): only the 4xx, 5xx and panic lines are written,
/// each with its request span's ids.
#[test]
fn at_rust_log_warn_through_the_builder_only_failures_are_written() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    let out = support::Captured::default();
    let (dispatch, _guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("warn")
        .build()
        .expect("valid filter");
    let h = Harness {
        mode: Mode::Standalone,
        out,
        dispatch,
        provider: None,
        exporter: None,
    };
    let recording = Recording::new();
    run(&h, || async {
        let addr = serve(app(HttpServerLayer::new().make_span(recording.clone()))).await;
        for path in ["/items/7", "/missing", "/bad", "/fail", "/panic"] {
            get_status(addr, path).await;
        }
    });
    let lines = h.lines();
    let written: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["target"].as_str().unwrap(),
                l["level"].as_str().unwrap(),
                l["span"]["url.path"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        written,
        [
            (TARGET, "WARN", "/missing"),
            (TARGET, "WARN", "/bad"),
            (TARGET, "ERROR", "/fail"),
            (TARGET, "ERROR", "/panic"),
        ],
        "{lines:#?}"
    );
    assert_eq!(recording.count(), 5, "every request had its span");
    for path in ["/missing", "/bad", "/fail", "/panic"] {
        let ids = recording.ids(path);
        assert_in_request_span(line_of(&lines, &ids), &ids, Mode::Standalone);
    }
    recording.clear(&h);
}
