//! Error-triggered buffering in an axum service: the DEBUG lines of a
//! request that fails are written (before its ERROR completion line, each
//! with `"buffered":true`); those of a request that succeeds are not.
//!
//! ```text
//! cargo run --example buffer_on_error --features tower,tokio
//! ```
//!
//! The output filter is `info`: a DEBUG line is never written directly. It
//! is kept in its request's buffer — whether it was logged by the handler,
//! by a task it spawned or on the blocking pool — until the request ends.
//! `GET /ok` ends well, so its buffer is discarded; `GET /fail` answers
//! 500, so its completion line (ERROR) first writes the buffer out.

#[path = "shared/axum_app.rs"]
mod axum_app;

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tracing::Level;
use tracing_correlation::BufferConfig;

/// The work both endpoints do, with its DEBUG detail.
async fn load_cart(user: u64) -> u64 {
    tracing::debug!(user, "loading the cart");
    // A spawned task and a blocking task: their lines join the request's
    // buffer because the context travels with them.
    let items = tracing_correlation::context::tokio::spawn(async move {
        tracing::debug!(user, source = "cache", "cart found");
        3
    })
    .await
    .unwrap_or_default();
    let total = tracing_correlation::context::tokio::spawn_blocking(move || {
        tracing::debug!(items, "pricing on the blocking pool");
        items * 1250
    })
    .await
    .unwrap_or_default();
    tracing::info!(user, items, "cart loaded");
    total
}

async fn ok() -> String {
    load_cart(7).await.to_string()
}

async fn fail() -> StatusCode {
    let total = load_cart(8).await;
    tracing::debug!(total, gateway = "primary", "charging the card");
    StatusCode::INTERNAL_SERVER_ERROR
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let guard = tracing_correlation::builder()
        .filter("info")
        .buffer_until_error(BufferConfig::new(Level::DEBUG))
        .init();

    let app = Router::new()
        .route("/ok", get(ok))
        .route("/fail", get(fail))
        .layer(axum_app::server_layer());
    let addr = axum_app::serve(app, tokio::time::sleep(Duration::from_secs(10))).await?;

    for path in ["/ok", "/fail"] {
        let response = axum_app::send_get(addr, path, &[]).await?;
        tracing::info!(
            path,
            status = response.status().as_u16(),
            "client got an answer"
        );
    }
    if let Some(stats) = guard.buffer_stats(0) {
        tracing::info!(
            buffered = stats.buffered,
            written = stats.flushed,
            discarded = stats.discarded,
            "buffered lines"
        );
    }
    Ok(())
}
