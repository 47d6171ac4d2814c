//! Per-request verbosity across two services: a trusted caller marks one
//! request with the baggage entry `log.level=debug`, and both services
//! write that request's DEBUG lines, while other requests stay at `info`.
//!
//! ```text
//! cargo run --example raised_verbosity --features tower
//! ```
//!
//! Service A (`/call`) calls service B (`/work`) through the traced client,
//! which carries the trace context and the baggage, mark included. Both
//! run the same configuration: filter `info`, raise from baggage with a
//! DEBUG floor, at most 5 raised traces a minute. The first request has no
//! mark (no DEBUG line anywhere); the second has one (DEBUG lines from A
//! and B, all with the same trace id). A public edge would use
//! `HttpServerLayer::trust_incoming(false)`: then the caller's baggage,
//! and its mark, are dropped.

#[path = "shared/axum_app.rs"]
mod axum_app;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use tower_service::Service as _;
use tracing::Level;
use tracing_correlation::VerbosityConfig;

type Client = axum_app::TracedClient<tracing_correlation::DefaultClientSpan>;

async fn work() -> &'static str {
    tracing::debug!(rows = 42, "B: query plan chosen");
    tracing::info!("B: work done");
    "done"
}

async fn call(State((b, mut client)): State<(SocketAddr, Client)>) -> Result<String, StatusCode> {
    tracing::debug!(%b, "A: calling B");
    let request = Request::get(format!("http://{b}/work"))
        .body(String::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    poll_fn(|cx| client.poll_ready(cx))
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let response = client
        .call(request)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    tracing::info!(status = response.status().as_u16(), "A: B answered");
    Ok("called".to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _guard = tracing_correlation::builder()
        .filter("info")
        .verbosity_from_baggage(
            VerbosityConfig::new("log.level")
                .floor(Level::DEBUG)
                .max_per_minute(5),
        )
        .init();
    let shutdown = || tokio::time::sleep(Duration::from_secs(10));

    let b = axum_app::serve(
        Router::new()
            .route("/work", get(work))
            .layer(axum_app::server_layer()),
        shutdown(),
    )
    .await?;
    let client = axum_app::traced_client(axum_app::default_client_span());
    let a = axum_app::serve(
        Router::new()
            .route("/call", get(call))
            .with_state((b, client))
            .layer(axum_app::server_layer()),
        shutdown(),
    )
    .await?;

    // A trusted caller (A's server layer trusts every caller here).
    axum_app::send_get(a, "/call", &[]).await?;
    axum_app::send_get(
        a,
        "/call",
        &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("baggage", "log.level=debug"),
        ],
    )
    .await?;
    Ok(())
}
