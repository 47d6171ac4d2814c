//! The axum services of `examples/axum_server.rs` and
//! `examples/two_services.rs`, shared with the tower tests through
//! `#[path]` so the tests exercise exactly what the examples show.
#![allow(dead_code)]

use std::future::poll_fn;
use std::net::SocketAddr;

use axum::extract::{MatchedPath, State};
use axum::http::{Extensions, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_layer::Layer as _;
use tower_service::Service as _;
use tracing::Instrument as _;
use tracing_correlation::{
    DefaultClientSpan, DefaultServerSpan, HttpClientLayer, HttpClientService, HttpServerLayer,
    MakeRequestSpan,
};

/// The server layer every service uses: the default span, with axum's
/// matched route as `http.route` and in the span name.
pub(crate) fn server_layer() -> HttpServerLayer {
    HttpServerLayer::new().make_span(server_layer_span())
}

/// The request span of [`server_layer`].
pub(crate) fn server_layer_span() -> DefaultServerSpan {
    DefaultServerSpan::new().with_route(matched_path)
}

fn matched_path(extensions: &Extensions) -> Option<&str> {
    extensions.get::<MatchedPath>().map(MatchedPath::as_str)
}

/// Two endpoints: `/fanout` runs concurrent async calls (and a spawned
/// task), `/blocking` runs work on the blocking thread pool.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/fanout", get(fanout))
        .route("/blocking", get(blocking))
}

async fn fanout() -> String {
    tracing::info!("fanning out");
    // Each call runs in its own child span; `join!` polls them on this task,
    // so they inherit the request span without help.
    let (a, b, c) = tokio::join!(
        part(1).instrument(tracing::info_span!("part", n = 1)),
        part(2).instrument(tracing::info_span!("part", n = 2)),
        part(3).instrument(tracing::info_span!("part", n = 3)),
    );
    // A spawned task starts with no span: give it one explicitly.
    let spawned = tokio::spawn(part(4).instrument(tracing::info_span!("spawned_part", n = 4)));
    let d = spawned.await.unwrap_or_default();
    (a + b + c + d).to_string()
}

async fn part(n: u64) -> u64 {
    tokio::task::yield_now().await;
    tracing::info!(n, "part done");
    n * n
}

async fn blocking() -> String {
    tracing::info!("offloading to the blocking pool");
    // The pool thread has no span of its own: carry the request span there.
    let span = tracing::Span::current();
    let sum = tokio::task::spawn_blocking(move || {
        span.in_scope(|| {
            let sum: u64 = (1..=1000).sum();
            tracing::info!(sum, "blocking work done");
            sum
        })
    })
    .await
    .unwrap_or_default();
    sum.to_string()
}

/// A plain hyper client (for requests that come from outside any service).
pub(crate) fn plain_client() -> Client<HttpConnector, String> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The client service A uses: every request carries A's trace to B.
pub(crate) fn traced_client<M>(make_span: M) -> TracedClient<M>
where
    M: MakeRequestSpan<String> + Clone,
{
    HttpClientLayer::new()
        .make_span(make_span)
        .layer(plain_client())
}

/// The default client span, for [`traced_client`].
pub(crate) fn default_client_span() -> DefaultClientSpan {
    DefaultClientSpan::new()
}

/// Service A: `/call` calls service B's `/fanout` through the traced client.
pub(crate) fn service_a<M>(b: SocketAddr, client: TracedClient<M>) -> Router
where
    M: MakeRequestSpan<String> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/call", get(call_b::<M>))
        .with_state((b, client))
}

/// A traced hyper client, as service A holds it.
pub(crate) type TracedClient<M> = HttpClientService<Client<HttpConnector, String>, M>;

async fn call_b<M>(
    State((b, mut client)): State<(SocketAddr, TracedClient<M>)>,
) -> Result<String, StatusCode>
where
    M: MakeRequestSpan<String> + Clone + Send + Sync + 'static,
{
    tracing::info!(%b, "calling service B");
    let request = Request::get(format!("http://{b}/fanout"))
        .body(String::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    poll_fn(|cx| client.poll_ready(cx))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let response = client
        .call(request)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .to_bytes();
    tracing::info!(status = status.as_u16(), "service B answered");
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Serves `app` on a fresh loopback port until `shutdown` completes.
pub(crate) async fn serve(
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(addr)
}

/// Sends a GET with `headers` through a plain client and returns the
/// response with its body read.
pub(crate) async fn send_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<axum::http::Response<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = plain_client().request(request.body(String::new())?).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(axum::http::Response::from_parts(
        parts,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}
