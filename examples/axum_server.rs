//! An axum server whose every log line carries the request's trace id.
//!
//! ```text
//! cargo run --example axum_server --features tower                 # one demo round, then exit
//! cargo run --example axum_server --features tower -- --serve 30   # serve for 30 s
//! ```
//!
//! The demo round calls both endpoints with a `traceparent` and a `baggage`
//! header: every JSON line continues that trace and carries the allowlisted
//! `tenant` baggage (but not `secret`). With `--serve`, try:
//!
//! ```text
//! curl -i -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!      -H 'baggage: tenant=acme' http://127.0.0.1:PORT/fanout
//! ```

#[path = "shared/axum_app.rs"]
mod axum_app;

use std::time::Duration;

use tracing_correlation::JsonFormat;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _guard = tracing_correlation::builder()
        .json(JsonFormat::new().with_baggage_fields(["tenant", "user_id"]))
        .init();

    let serve_for = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, seconds] if flag == "--serve" => Some(Duration::from_secs(seconds.parse()?)),
        _ => return Err("usage: axum_server [--serve SECONDS]".into()),
    };

    let app = axum_app::routes().layer(axum_app::server_layer().response_traceparent(true));
    let shutdown_after = serve_for.unwrap_or(Duration::from_secs(10));
    let addr = axum_app::serve(app, tokio::time::sleep(shutdown_after)).await?;
    tracing::info!(%addr, "listening");

    if let Some(duration) = serve_for {
        tokio::time::sleep(duration).await;
        return Ok(());
    }
    for path in ["/fanout", "/blocking"] {
        let response = axum_app::send_get(
            addr,
            path,
            &[
                ("traceparent", CALLER),
                ("baggage", "tenant=acme,secret=s3cr3t"),
            ],
        )
        .await?;
        let traceparent = response
            .headers()
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        println!(
            "GET {path} -> {} body={} traceparent={traceparent}",
            response.status(),
            response.body()
        );
    }
    Ok(())
}
