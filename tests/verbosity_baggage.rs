//! Per-request verbosity from trusted baggage, through two in-process
//! services (each with its own pipeline, as two processes would have),
//! joined by the tower client and server layers: a trusted caller's mark
//! raises both services and travels from A to B; an untrusted caller's is
//! dropped at A's edge; the floor and the rate limit hold; with no raised
//! request open, the raise adds nothing to any callsite.

mod support;

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use support::Captured;
use tower_layer::Layer as _;
use tower_service::Service;
use tracing::instrument::WithSubscriber as _;
use tracing::{Dispatch, Level};
use tracing_correlation::{
    HttpClientLayer, HttpClientService, HttpServerLayer, HttpServerService, LoggingGuard,
    ResponseBody, VerbosityConfig, W3cPropagator,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TARGET: &str = "verbosity_baggage";

/// Tests in this binary change process-wide callsite interest: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Svc {
    out: Captured,
    dispatch: Dispatch,
    guard: LoggingGuard,
}

fn pipeline(config: VerbosityConfig) -> Svc {
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .span_filter("info")
        .verbosity_from_baggage(config)
        .build()
        .expect("valid configuration");
    Svc {
        out,
        dispatch,
        guard,
    }
}

/// B, reached by A's client without a network: B's server layer runs with
/// B's own dispatcher.
#[derive(Clone)]
struct InProcess {
    b: HttpServerService<Router>,
    dispatch: Dispatch,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<String>> for InProcess {
    type Response = Response<ResponseBody<Body>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        let mut b = self.b.clone();
        let request = request.map(Body::from);
        Box::pin(async move { b.call(request).await }.with_subscriber(self.dispatch.clone()))
    }
}

type Client = HttpClientService<InProcess>;

/// What B saw of the mark, per request.
type Received = Arc<Mutex<Vec<Option<String>>>>;

fn service_b(received: Received) -> HttpServerService<Router> {
    let routes = Router::new().route(
        "/b",
        get(move |headers: HeaderMap| {
            let received = received.clone();
            async move {
                received.lock().unwrap().push(
                    headers
                        .get("baggage")
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
                tracing::trace!("b: trace detail");
                tracing::debug!("b: detail");
                tracing::info!("b: done");
                "ok"
            }
        }),
    );
    HttpServerLayer::new()
        .propagator(W3cPropagator::new())
        .layer(routes)
}

fn service_a(
    client: Client,
    trusted: bool,
) -> HttpServerService<Router, tracing_correlation::DefaultServerSpan, bool> {
    let routes = Router::new().route("/a", get(call_b)).with_state(client);
    HttpServerLayer::new()
        .propagator(W3cPropagator::new())
        .trust_incoming(trusted)
        .layer(routes)
}

async fn call_b(State(mut client): State<Client>) -> StatusCode {
    tracing::trace!("a: trace detail");
    tracing::debug!("a: detail");
    log::debug!("a: from the log crate");
    let request = Request::get("http://b/b").body(String::new()).unwrap();
    poll_fn(|cx| client.poll_ready(cx)).await.unwrap();
    let status = client.call(request).await.unwrap().status();
    tracing::info!("a: done");
    status
}

/// A and B, and a way to send requests to A as an outside caller.
struct Pair {
    a: Svc,
    b: Svc,
    received: Received,
    a_service: HttpServerService<Router, tracing_correlation::DefaultServerSpan, bool>,
}

fn make_pair(config: &VerbosityConfig, a_trusts: bool) -> Pair {
    let a = pipeline(config.clone());
    let b = pipeline(config.clone());
    let received = Received::default();
    let client = HttpClientLayer::new()
        .propagator(W3cPropagator::new())
        .layer(InProcess {
            b: service_b(received.clone()),
            dispatch: b.dispatch.clone(),
        });
    Pair {
        a_service: service_a(client, a_trusts),
        a,
        b,
        received,
    }
}

impl Pair {
    /// One request to A from an outside caller with these headers.
    fn send(&mut self, n: u32, baggage: Option<&str>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut request = Request::get("/a").header(
            "traceparent",
            format!("00-{TRACE}-{:016x}-01", u64::from(n) + 1),
        );
        if let Some(baggage) = baggage {
            request = request.header("baggage", baggage);
        }
        let request = request.body(Body::empty()).unwrap();
        let a_service = &mut self.a_service;
        let dispatch = self.a.dispatch.clone();
        let status = runtime.block_on(
            async move {
                poll_fn(|cx| Service::<Request<Body>>::poll_ready(a_service, cx))
                    .await
                    .unwrap();
                a_service.call(request).await.unwrap().status()
            }
            .with_subscriber(dispatch),
        );
        assert_eq!(status, StatusCode::OK);
    }
}

/// The test's own lines, as (level, message).
fn own_lines(out: &Captured) -> Vec<(String, String)> {
    out.lines()
        .iter()
        .filter(|l| l["target"] == TARGET)
        .map(|l| {
            assert_eq!(l["trace_id"], TRACE, "{l}");
            (
                l["level"].as_str().unwrap().to_owned(),
                l["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(l, m)| ((*l).to_owned(), (*m).to_owned()))
        .collect()
}

fn install_log_bridge() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_correlation::LogBridge::new()
            .install()
            .expect("no other logger in this test binary");
    });
}

#[test]
fn a_trusted_callers_mark_raises_both_services_and_travels_downstream() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    install_log_bridge();
    let config = VerbosityConfig::new("log.level").floor(Level::DEBUG);
    let mut pair = make_pair(&config, true);
    pair.send(1, Some("log.level=debug,tenant=acme"));
    assert_eq!(
        own_lines(&pair.a.out),
        pairs(&[
            ("DEBUG", "a: detail"),
            ("DEBUG", "a: from the log crate"),
            ("INFO", "a: done")
        ])
    );
    assert_eq!(
        own_lines(&pair.b.out),
        pairs(&[("DEBUG", "b: detail"), ("INFO", "b: done")])
    );
    // The mark travelled with the rest of the baggage.
    let received = pair.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let baggage = received[0].as_deref().expect("B received baggage");
    let mut members: Vec<&str> = baggage.split(',').collect();
    members.sort_unstable();
    assert_eq!(members, ["log.level=debug", "tenant=acme"]);
    for service in [&pair.a, &pair.b] {
        let stats = service.guard.verbosity_stats().unwrap();
        assert_eq!((stats.raised, stats.refused, stats.open), (1, 0, 0));
    }
}

#[test]
fn an_untrusted_callers_mark_is_ignored_and_not_passed_on() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let config = VerbosityConfig::new("log.level");
    let mut pair = make_pair(&config, false);
    pair.send(1, Some("log.level=debug"));
    assert_eq!(own_lines_any_trace(&pair.a.out), ["a: done"]);
    assert_eq!(own_lines_any_trace(&pair.b.out), ["b: done"]);
    assert_eq!(pair.received.lock().unwrap().clone(), [None::<String>]);
    assert_eq!(pair.a.guard.verbosity_stats().unwrap().raised, 0);
    assert_eq!(pair.b.guard.verbosity_stats().unwrap().raised, 0);
}

/// Messages of the test's own lines (an untrusted caller's trace is not
/// continued, so the ids are new).
fn own_lines_any_trace(out: &Captured) -> Vec<String> {
    out.lines()
        .iter()
        .filter(|l| l["target"] == TARGET)
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_floor_holds_and_invalid_values_raise_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    install_log_bridge();
    // Asking for TRACE under a DEBUG floor gets DEBUG.
    let mut pair = make_pair(&VerbosityConfig::new("log.level").floor(Level::DEBUG), true);
    pair.send(1, Some("log.level=TRACE"));
    assert_eq!(
        own_lines(&pair.a.out)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>(),
        ["a: detail", "a: from the log crate", "a: done"]
    );
    assert_eq!(
        own_lines(&pair.b.out)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>(),
        ["b: detail", "b: done"]
    );
    // A floor of INFO: nothing below the filter's own level is raised.
    let mut pair = make_pair(&VerbosityConfig::new("log.level").floor(Level::INFO), true);
    pair.send(2, Some("log.level=debug"));
    assert_eq!(own_lines_any_trace(&pair.a.out), ["a: done"]);
    assert_eq!(own_lines_any_trace(&pair.b.out), ["b: done"]);
    // Not a level name: ignored and counted.
    let mut pair = make_pair(&VerbosityConfig::new("log.level"), true);
    pair.send(3, Some("log.level=verbose"));
    assert_eq!(own_lines_any_trace(&pair.a.out), ["a: done"]);
    let stats = pair.a.guard.verbosity_stats().unwrap();
    assert_eq!((stats.raised, stats.invalid), (0, 1));
}

#[test]
fn the_rate_limit_holds_per_process() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    install_log_bridge();
    let config = VerbosityConfig::new("log.level").max_per_minute(2);
    let mut pair = make_pair(&config, true);
    for n in 0..5 {
        pair.send(n, Some("log.level=debug"));
    }
    let debug_lines = |out: &Captured| {
        own_lines(out)
            .into_iter()
            .filter(|(level, _)| level == "DEBUG")
            .count()
    };
    // Two raised requests, each with two DEBUG lines in A and one in B.
    assert_eq!(debug_lines(&pair.a.out), 4);
    assert_eq!(debug_lines(&pair.b.out), 2);
    for service in [&pair.a, &pair.b] {
        let stats = service.guard.verbosity_stats().unwrap();
        assert_eq!((stats.raised, stats.refused, stats.open), (2, 3, 0));
    }
    // A window that has passed admits again.
    let config = VerbosityConfig::new("log.level").max_per(1, Duration::from_millis(50));
    let mut pair = make_pair(&config, true);
    pair.send(10, Some("log.level=debug"));
    pair.send(11, Some("log.level=debug"));
    std::thread::sleep(Duration::from_millis(60));
    pair.send(12, Some("log.level=debug"));
    let stats = pair.a.guard.verbosity_stats().unwrap();
    assert_eq!((stats.raised, stats.refused), (2, 1));
}

#[test]
fn with_no_raised_request_open_debug_callsites_are_disabled_again() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    install_log_bridge();
    let config = VerbosityConfig::new("log.level");
    let mut pair = make_pair(&config, true);
    let probe = |dispatch: &Dispatch| {
        tracing::dispatcher::with_default(dispatch, || {
            (
                tracing::level_filters::LevelFilter::current(),
                tracing::enabled!(Level::DEBUG),
            )
        })
    };
    assert_eq!(
        probe(&pair.a.dispatch),
        (tracing::level_filters::LevelFilter::INFO, false)
    );
    pair.send(1, Some("log.level=debug"));
    assert_eq!(own_lines(&pair.a.out).len(), 3, "raised while open");
    assert_eq!(
        probe(&pair.a.dispatch),
        (tracing::level_filters::LevelFilter::INFO, false)
    );
}

/// A raised request open on the side; an ordinary request logs DEBUG.
fn beside_a_raised_request(filter: &str) -> Vec<String> {
    use opentelemetry::baggage::BaggageExt as _;
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter(filter)
        .span_filter("info")
        .verbosity_from_baggage(VerbosityConfig::new("log.level"))
        .build()
        .expect("valid configuration");
    tracing::dispatcher::with_default(&dispatch, || {
        let raised = {
            let _marked =
                opentelemetry::Context::current_with_baggage([opentelemetry::KeyValue::new(
                    "log.level",
                    "debug",
                )])
                .attach();
            tracing::info_span!("raised request")
        };
        raised.in_scope(|| tracing::debug!("raised: detail"));
        tracing::info_span!("ordinary request").in_scope(|| {
            tracing::debug!("ordinary: detail");
            tracing::info!("ordinary: done");
        });
        assert_eq!(guard.verbosity_stats().unwrap().open, 1);
        drop(raised);
        assert_eq!(guard.verbosity_stats().unwrap().open, 0);
    });
    own_lines_any_trace(&out)
}

#[test]
fn a_raise_open_elsewhere_changes_nothing_for_other_requests() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let on_a_thread = |filter: &'static str| {
        std::thread::spawn(move || beside_a_raised_request(filter))
            .join()
            .unwrap()
    };
    assert_eq!(on_a_thread("info"), ["raised: detail", "ordinary: done"]);
    // A line the filter itself enables is written in any request, even
    // while the gate in front refuses raise-only lines.
    assert_eq!(
        on_a_thread("info,verbosity_baggage=debug"),
        ["raised: detail", "ordinary: detail", "ordinary: done"]
    );
}
