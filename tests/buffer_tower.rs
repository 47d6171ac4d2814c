//! A 5xx completion line of the server middleware is a trigger, whatever
//! its level: the request's buffered DEBUG lines come out before it; a 2xx
//! or 4xx request's never do.

mod support;

use std::future::poll_fn;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use support::Captured;
use tower_layer::Layer as _;
use tower_service::Service as _;
use tracing::Level;
use tracing_correlation::{BufferConfig, HttpServerLayer, RequestOutcome};

fn app() -> Router {
    Router::new()
        .route(
            "/ok",
            get(|| async {
                tracing::debug!("ok: detail");
                "fine"
            }),
        )
        .route(
            "/missing",
            get(|| async {
                tracing::debug!("missing: detail");
                StatusCode::NOT_FOUND
            }),
        )
        .route(
            "/broken",
            get(|| async {
                tracing::debug!(attempt = 1, "broken: detail");
                tracing::debug!(attempt = 2, "broken: more detail");
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
}

#[test]
fn a_5xx_completion_line_writes_the_requests_buffered_lines_first() {
    let out = Captured::default();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .span_filter("info")
        .buffer_until_error(BufferConfig::new(Level::DEBUG))
        .build()
        .expect("valid configuration");
    // Every completion line at WARN: the status, not the level, triggers.
    let layer = HttpServerLayer::new().completion_level(|_: &RequestOutcome| Some(Level::WARN));
    let mut service = layer.layer(app());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(&dispatch);
    for path in ["/ok", "/missing", "/broken"] {
        let status = runtime.block_on(async {
            let request = Request::get(path).body(Body::empty()).unwrap();
            poll_fn(|cx| tower_service::Service::<Request<Body>>::poll_ready(&mut service, cx))
                .await
                .unwrap();
            service.call(request).await.unwrap().status()
        });
        let expected = match path {
            "/ok" => StatusCode::OK,
            "/missing" => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        assert_eq!(status, expected);
    }
    let lines = out.lines();
    let summary: Vec<(String, Option<i64>)> = lines
        .iter()
        .map(|l| {
            (
                l["message"].as_str().unwrap().to_owned(),
                l["http.response.status_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("request completed".to_owned(), Some(200)),
            ("request completed".to_owned(), Some(404)),
            ("broken: detail".to_owned(), None),
            ("broken: more detail".to_owned(), None),
            ("request completed".to_owned(), Some(503)),
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[2]["buffered"], true);
    assert_eq!(lines[3]["buffered"], true);
    assert_eq!(lines[4].get("buffered"), None::<&Value>);
    assert_eq!(lines[4]["level"], "WARN");
    for line in &lines[2..4] {
        assert_eq!(line["trace_id"], lines[4]["trace_id"]);
        assert_eq!(line["span_id"], lines[4]["span_id"]);
    }
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!((stats.buffered, stats.flushed, stats.discarded), (4, 2, 2));
}
