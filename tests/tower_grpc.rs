//! tonic through the tower layers, over loopback, in both id modes: a tonic
//! client behind `HttpClientLayer` calls a tonic server behind
//! `HttpServerLayer`. The trace crosses the hop with exact ids and parents,
//! spans and completion lines carry the gRPC conventions, and the gRPC
//! status is read from the headers (errors: trailers-only responses) or
//! from the trailers (successes).
//!
//! The messages and the service are written by hand (prost derive, tonic's
//! `server::Grpc`), so no `protoc` and no build script are needed.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::BodyExt as _;
use opentelemetry::trace::{SpanId, SpanKind};
use prost::Message as _;
use serde_json::Value;
use support::{Harness, Mode, MODES};
use tonic::body::Body;
use tonic::server::UnaryService;
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower_layer::Layer as _;
use tracing::Span;
use tracing_correlation::{
    DefaultClientSpan, DefaultServerSpan, HttpClientLayer, HttpServerLayer, MakeRequestSpan,
    TraceIds, W3cPropagator,
};

const TARGET: &str = "tracing_correlation::tower";
const SAY_HELLO: &str = "/demo.v1.Greeter/SayHello";

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `demo.v1.Greeter`: one unary method; the name chooses the outcome.
#[derive(Clone)]
struct Greeter;

impl tower_service::Service<Request<Body>> for Greeter {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() != SAY_HELLO {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
            Ok(grpc.unary(SayHello, request).await)
        })
    }
}

struct SayHello;

impl UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let name = request.into_inner().name;
        Box::pin(async move {
            tracing::info!(%name, "saying hello");
            match name.as_str() {
                "nobody" => Err(Status::not_found("no such person")),
                "broken" => Err(Status::internal("the greeter is broken")),
                _ => Ok(tonic::Response::new(HelloReply {
                    message: format!("hello {name}"),
                })),
            }
        })
    }
}

fn run<F: Future>(h: &Harness, f: impl FnOnce() -> F) -> F::Output {
    let dispatch = h.dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)))
        .build()
        .unwrap();
    h.run(|| runtime.block_on(f()))
}

/// Span handles (and the `traceparent` the server received), kept to read
/// ids after the calls.
#[derive(Clone, Default)]
struct Seen {
    server_spans: Arc<Mutex<Vec<Span>>>,
    client_spans: Arc<Mutex<Vec<Span>>>,
    received: Arc<Mutex<Vec<Option<String>>>>,
}

impl Seen {
    fn ids(spans: &Mutex<Vec<Span>>) -> Vec<TraceIds> {
        spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| TraceIds::from_span(s).expect("entered spans have ids"))
            .collect()
    }

    fn clear(&self, h: &Harness) {
        h.run(|| {
            self.server_spans.lock().unwrap().clear();
            self.client_spans.lock().unwrap().clear();
        });
    }
}

/// Serves the greeter on loopback behind the server layer.
async fn serve_greeter(seen: &Seen) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (spans, received) = (seen.server_spans.clone(), seen.received.clone());
    let layer = HttpServerLayer::new().make_span(move |request: &Request<Body>| {
        let header = request.headers().get("traceparent");
        received
            .lock()
            .unwrap()
            .push(header.map(|v| v.to_str().unwrap().to_owned()));
        let span = DefaultServerSpan::new().make_span(request);
        spans.lock().unwrap().push(span.clone());
        span
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .serve_with_incoming_shutdown(
                Greeter,
                tonic::transport::server::TcpIncoming::from(listener),
                std::future::pending(),
            )
            .await
    });
    addr
}

/// A tonic client over hyper (HTTP/2 with prior knowledge) behind the
/// client layer, with its completion line on.
fn greeter_client(
    addr: SocketAddr,
    seen: &Seen,
) -> tonic::client::Grpc<
    tracing_correlation::HttpClientService<
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Body,
        >,
        impl MakeRequestSpan<Body> + Clone,
    >,
> {
    let spans = seen.client_spans.clone();
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Body>();
    let traced = HttpClientLayer::new()
        .completion_line(true)
        .make_span(move |request: &Request<Body>| {
            let span = DefaultClientSpan::new().make_span(request);
            spans.lock().unwrap().push(span.clone());
            span
        })
        .layer(hyper);
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    tonic::client::Grpc::with_origin(traced, origin)
}

/// Calls `SayHello(name)` inside `caller`; the reply or the status code.
async fn say_hello<T>(client: &mut tonic::client::Grpc<T>, name: &str) -> Result<String, Code>
where
    T: tonic::client::GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = prost::bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    client.ready().await.map_err(|_| Code::Unavailable)?;
    let request = tonic::Request::new(HelloRequest { name: name.into() });
    client
        .unary(
            request,
            PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::default(),
        )
        .await
        .map(|reply| reply.into_inner().message)
        .map_err(|status| status.code())
}

fn lines_with_target(h: &Harness, target: &str) -> Vec<Value> {
    h.lines()
        .into_iter()
        .filter(|l| l["target"] == target)
        .collect()
}

#[test]
fn tonic_calls_cross_the_hop_with_exact_ids_and_grpc_conventions() {
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let seen = Seen::default();
        let (caller, results) = run(&h, || async {
            let addr = serve_greeter(&seen).await;
            let mut client = greeter_client(addr, &seen);
            let caller = tracing::info_span!("caller");
            let results = {
                let mut results = Vec::new();
                for name in ["ada", "nobody", "broken"] {
                    let call = say_hello(&mut client, name);
                    results.push(tracing::Instrument::instrument(call, caller.clone()).await);
                }
                results
            };
            (TraceIds::from_span(&caller).unwrap(), results)
        });
        assert_eq!(
            results,
            [
                Ok("hello ada".to_owned()),
                Err(Code::NotFound),
                Err(Code::Internal)
            ],
            "{mode:?}"
        );
        let clients = Seen::ids(&seen.client_spans);
        let servers = Seen::ids(&seen.server_spans);
        assert_eq!((clients.len(), servers.len()), (3, 3), "{mode:?}");
        let received = seen.received.lock().unwrap().clone();
        let handled: Vec<Value> = h
            .lines()
            .into_iter()
            .filter(|l| l["message"] == "saying hello")
            .collect();
        let completions = lines_with_target(&h, TARGET);
        assert_eq!(handled.len(), 3, "{mode:?}: {handled:#?}");
        assert_eq!(completions.len(), 6, "{mode:?}: {completions:#?}");

        // (client level, client error.type, server level, server error.type, code)
        let expected = [
            ("INFO", None, "INFO", None, 0),
            ("WARN", Some("NOT_FOUND"), "WARN", None, 5),
            ("ERROR", Some("INTERNAL"), "ERROR", Some("INTERNAL"), 13),
        ];
        for (i, (client_level, client_error, server_level, server_error, code)) in
            expected.into_iter().enumerate()
        {
            let (client, server) = (&clients[i], &servers[i]);
            // One trace: the caller's. The client span is the caller's
            // child; the server received exactly the client span's context.
            assert_eq!(client.trace_id(), caller.trace_id(), "{mode:?}");
            assert_eq!(server.trace_id(), caller.trace_id(), "{mode:?}");
            assert_ne!(client.span_id(), caller.span_id());
            assert_ne!(server.span_id(), client.span_id());
            assert_eq!(
                received[i].as_deref(),
                Some(&*client.to_string()),
                "{mode:?}"
            );

            // The handler's line is in the server's request span.
            assert_eq!(handled[i]["trace_id"], caller.trace_id_hex().as_str());
            assert_eq!(
                handled[i]["span_id"],
                server.span_id_hex().as_str(),
                "{mode:?}"
            );
            assert_eq!(handled[i]["span"]["rpc.system"], "grpc");

            let line_in = |ids: &TraceIds| -> Value {
                let matching: Vec<_> = completions
                    .iter()
                    .filter(|l| l["span_id"] == ids.span_id_hex().as_str())
                    .collect();
                assert_eq!(matching.len(), 1, "{mode:?}: {completions:#?}");
                matching[0].clone()
            };
            for (line, level, error_type, span_name, duration) in [
                (
                    line_in(client),
                    client_level,
                    client_error,
                    "client_request",
                    "http.client.request.duration",
                ),
                (
                    line_in(server),
                    server_level,
                    server_error,
                    "request",
                    "http.server.request.duration",
                ),
            ] {
                assert_eq!(line["trace_id"], caller.trace_id_hex().as_str(), "{line}");
                assert_eq!(line["level"], level, "{mode:?} code {code}: {line}");
                assert!(line[duration].as_f64().is_some(), "{line}");
                assert_grpc_outcome(&line, span_name, code, error_type);
            }
        }

        seen.clear(&h);
        if mode == Mode::Otel {
            assert_exported(&h, &caller, &clients, &servers);
        }
    }
}

/// A completion line of a `SayHello` call ending with `code`, and its
/// span's fields (recorded before the line is written).
fn assert_grpc_outcome(line: &Value, span_name: &str, code: i64, error_type: Option<&str>) {
    assert_eq!(line["message"], "request completed");
    assert_eq!(line["rpc.system"], "grpc", "{line}");
    assert_eq!(line["rpc.service"], "demo.v1.Greeter");
    assert_eq!(line["rpc.method"], "SayHello");
    assert_eq!(line["rpc.grpc.status_code"], code, "{line}");
    assert_eq!(line["http.response.status_code"], 200);
    assert_eq!(line["http.request.method"], "POST");
    assert_eq!(line["error.type"].as_str(), error_type, "{line}");
    let span = &line["span"];
    assert_eq!(span["name"], span_name);
    assert_eq!(span["otel.name"], "demo.v1.Greeter/SayHello");
    assert_eq!(span["rpc.system"], "grpc");
    assert_eq!(span["rpc.service"], "demo.v1.Greeter");
    assert_eq!(span["rpc.method"], "SayHello");
    assert_eq!(span["rpc.grpc.status_code"], code, "{span}");
    assert_eq!(span["error.type"].as_str(), error_type, "{span}");
    let failed = error_type.map(|_| "ERROR");
    assert_eq!(span["otel.status_code"].as_str(), failed, "{span}");
}

/// The exported spans: caller → client span → (remote) server span, per
/// call, with the gRPC status as an int attribute.
fn assert_exported(h: &Harness, caller: &TraceIds, clients: &[TraceIds], servers: &[TraceIds]) {
    let spans = h.exporter.as_ref().unwrap().get_finished_spans().unwrap();
    let by_id = |ids: &TraceIds| {
        spans
            .iter()
            .find(|s| s.span_context.span_id() == ids.span_id())
            .unwrap_or_else(|| panic!("span {ids} exported"))
    };
    assert_eq!(by_id(caller).parent_span_id, SpanId::INVALID);
    for (i, code) in [0, 5, 13].into_iter().enumerate() {
        let client = by_id(&clients[i]);
        let server = by_id(&servers[i]);
        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(client.parent_span_id, caller.span_id());
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(
            server.parent_span_id,
            clients[i].span_id(),
            "across the hop"
        );
        assert!(server.parent_span_is_remote);
        assert_eq!(&*server.name, "demo.v1.Greeter/SayHello");
        let recorded = server
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "rpc.grpc.status_code")
            .map(|kv| kv.value.clone());
        assert_eq!(recorded, Some(opentelemetry::Value::I64(code)));
    }
}

/// What tonic sends, which decides where the middleware reads the status:
/// a success carries `grpc-status` in the trailers at the end of the body,
/// an error returned by the handler in the response headers
/// ("trailers-only").
#[test]
fn tonic_sends_success_status_in_trailers_and_errors_in_headers() {
    use tower_service::Service as _;
    // Under a subscriber too: a callsite first hit on a thread without one
    // while the other test's subscriber is being registered can have its
    // interest cached as "never" (tracing's callsite cache is global).
    let h = Harness::new(Mode::Standalone);
    run(&h, || async {
        for (name, in_headers, in_trailers) in
            [("ada", None, Some("0")), ("nobody", Some("5"), None)]
        {
            let message = HelloRequest { name: name.into() }.encode_to_vec();
            let mut framed = vec![0];
            framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&message);
            let request = Request::post(SAY_HELLO)
                .header("content-type", "application/grpc")
                .body(Body::new(http_body_util::Full::new(
                    prost::bytes::Bytes::from(framed),
                )))
                .unwrap();
            let response = Greeter.call(request).await.unwrap();
            let header = response
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(header.as_deref(), in_headers, "{name}");
            let collected = response.into_body().collect().await.unwrap();
            let trailer = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(trailer.as_deref(), in_trailers, "{name}");
        }
    });
}

/// A gRPC response body dropped before its trailers: the call never learnt
/// its status, so its line says it was cancelled (and only then is written).
#[test]
fn a_grpc_body_dropped_before_its_trailers_is_a_cancelled_call() {
    use tower_service::Service as _;
    opentelemetry::global::set_text_map_propagator(W3cPropagator::new());
    for mode in MODES {
        let h = Harness::new(mode);
        let seen = Seen::default();
        let lines_before_drop = run(&h, || async {
            let addr = serve_greeter(&seen).await;
            let spans = seen.client_spans.clone();
            let mut client = HttpClientLayer::new()
                .completion_line(true)
                .make_span(move |request: &Request<Body>| {
                    let span = DefaultClientSpan::new().make_span(request);
                    spans.lock().unwrap().push(span.clone());
                    span
                })
                .layer(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .http2_only(true)
                    .build_http::<Body>(),
                );
            let message = HelloRequest { name: "ada".into() }.encode_to_vec();
            let mut framed = vec![0];
            framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&message);
            let request = Request::post(format!("http://{addr}{SAY_HELLO}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Body::new(http_body_util::Full::new(
                    prost::bytes::Bytes::from(framed),
                )))
                .unwrap();
            std::future::poll_fn(|cx| client.poll_ready(cx))
                .await
                .unwrap();
            let response = client.call(request).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            let before = lines_with_target(&h, TARGET)
                .into_iter()
                .filter(|l| l["span"]["name"] == "client_request")
                .count();
            drop(response);
            before
        });
        assert_eq!(lines_before_drop, 0, "{mode:?}: no status yet, no line yet");
        let client = Seen::ids(&seen.client_spans);
        assert_eq!(client.len(), 1);
        let lines: Vec<Value> = lines_with_target(&h, TARGET)
            .into_iter()
            .filter(|l| l["span"]["name"] == "client_request")
            .collect();
        assert_eq!(lines.len(), 1, "{mode:?}: {lines:#?}");
        let line = &lines[0];
        assert_eq!(
            line["span_id"],
            client[0].span_id_hex().as_str(),
            "{mode:?}"
        );
        assert_eq!(line["message"], "request cancelled");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["error.type"], "cancelled");
        assert_eq!(line["rpc.method"], "SayHello");
        assert!(line.get("rpc.grpc.status_code").is_none(), "{line}");
        assert_eq!(line["span"]["error.type"], "cancelled");
        seen.clear(&h);
    }
}
