//! Service A calls service B over HTTP on loopback; B's log lines carry A's
//! trace id. One round trip, then exit.
//!
//! ```text
//! cargo run --example two_services --features tower
//! ```
//!
//! A's server layer opens A's request span; A's client layer opens a client
//! span and sends its context in `traceparent`; B's server layer continues
//! it. Every JSON line of both services shows the same `trace_id`.

#[path = "shared/axum_app.rs"]
mod axum_app;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _guard = tracing_correlation::init_json_logging()?;
    // Both servers stop on their own; the round trip takes milliseconds.
    let shutdown = || tokio::time::sleep(Duration::from_secs(10));

    let b = axum_app::serve(
        axum_app::routes().layer(axum_app::server_layer()),
        shutdown(),
    )
    .await?;
    let client = axum_app::traced_client(axum_app::default_client_span());
    let a = axum_app::serve(
        axum_app::service_a(b, client).layer(axum_app::server_layer().response_traceparent(true)),
        shutdown(),
    )
    .await?;
    tracing::info!(%a, %b, "both services listening");

    let response = axum_app::send_get(a, "/call", &[]).await?;
    let traceparent = response
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    println!(
        "GET /call -> {} body={} traceparent={traceparent}",
        response.status(),
        response.body()
    );
    Ok(())
}
