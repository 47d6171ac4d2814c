//! What a collector's users decode: attribute types (integers stay
//! integers), the HTTP server and client attributes of the semantic
//! conventions, no tracing-opentelemetry extras unless asked, the
//! instrumentation scope and `service.instance.id`. Decoded from real OTLP
//! requests by the in-process receiver.
#![cfg(all(feature = "otlp", feature = "tower"))]

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use otlp_receiver::{Attr, OtlpReceiver, ReceivedSpan};
use support::Captured;
use tower_layer::Layer as _;
use tower_service::Service;
use tracing_correlation::{
    DefaultServerSpan, ExportConfig, HttpClientLayer, HttpServerLayer, SpanDetails,
};

fn export_to(receiver: &OtlpReceiver, extra: &[(&'static str, &'static str)]) -> ExportConfig {
    let mut vars: Vec<(&'static str, String)> =
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_base())];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    ExportConfig::from_lookup(move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
}

/// Answers 201 to every request.
#[derive(Clone)]
struct Created;

impl<B> Service<Request<B>> for Created {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(Response::builder()
            .status(201)
            .body(String::new())
            .unwrap()))
    }
}

/// Runs `f` under a builder exporting to `receiver` and returns the spans
/// the receiver decoded once the guard is dropped.
fn exported(
    receiver: &OtlpReceiver,
    details: Option<SpanDetails>,
    extra: &[(&'static str, &'static str)],
    expected: usize,
    f: impl FnOnce(),
) -> BTreeMap<String, ReceivedSpan> {
    let mut builder = tracing_correlation::builder()
        .writer(Captured::default())
        .filter("info")
        .export(export_to(receiver, extra))
        .shutdown_timeout(Duration::from_secs(5));
    if let Some(details) = details {
        builder = builder.otel_span_details(details);
    }
    let (dispatch, guard) = builder.build().unwrap();
    tracing::dispatcher::with_default(&dispatch, f);
    drop(dispatch);
    drop(guard);
    let spans = receiver.wait_for(expected, Duration::from_secs(10));
    assert_eq!(spans.len(), expected, "{spans:#?}");
    spans
        .into_iter()
        .map(|span| (format!("{} {}", span.name, span.kind), span))
        .collect()
}

#[test]
fn unsigned_integers_are_exported_as_integers_and_extras_are_off() {
    let receiver = OtlpReceiver::start();
    let spans = exported(&receiver, None, &[], 1, || {
        let span = tracing::info_span!(
            "job",
            count = 42_u32,
            wide = 7_u128,
            huge = u64::MAX,
            signed = -3_i64,
            ratio = 0.5,
            ok = true,
            label = "x",
            later = tracing::field::Empty,
        );
        span.record("later", 9_u16);
        let _entered = span.enter();
        tracing::info!("inside");
    });
    let job = &spans["job 1"];
    let a = &job.attributes;
    assert_eq!(a["count"], Attr::Int(42));
    assert_eq!(a["wide"], Attr::Int(7));
    assert_eq!(a["later"], Attr::Int(9));
    // Beyond i64: a string, never a wrapped negative number.
    assert_eq!(a["huge"], Attr::str("18446744073709551615"));
    assert_eq!(a["signed"], Attr::Int(-3));
    assert_eq!(a["ratio"], Attr::Double(0.5));
    assert_eq!(a["ok"], Attr::Bool(true));
    assert_eq!(a["label"], Attr::str("x"));
    assert_eq!(
        a.keys().map(String::as_str).collect::<Vec<_>>(),
        ["count", "huge", "label", "later", "ok", "ratio", "signed", "wide"],
        "no busy_ns, idle_ns, thread.*, code.* by default"
    );
    assert_eq!(job.scope_name, "tracing-correlation");
    assert_eq!(job.scope_version, env!("CARGO_PKG_VERSION"));
    let instance = &job.resource["service.instance.id"];
    assert_eq!(instance.len(), 36, "{instance}");
    assert_eq!(&instance[14..15], "4", "a version 4 UUID: {instance}");
}

#[test]
fn the_extras_come_back_when_asked() {
    let receiver = OtlpReceiver::start();
    let spans = exported(&receiver, Some(SpanDetails::ALL), &[], 1, || {
        let _span = tracing::info_span!("job").entered();
    });
    let a = &spans["job 1"].attributes;
    for key in [
        "busy_ns",
        "idle_ns",
        "thread.id",
        "thread.name",
        "code.file.path",
        "code.line.number",
        "target",
    ] {
        assert!(a.contains_key(key), "{key} missing: {a:?}");
    }
    assert!(matches!(a["busy_ns"], Attr::Int(_)));
    assert!(matches!(a["code.line.number"], Attr::Int(_)));
}

#[test]
fn a_configured_instance_id_is_kept() {
    let receiver = OtlpReceiver::start();
    let spans = exported(
        &receiver,
        None,
        &[("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")],
        1,
        || {
            let _span = tracing::info_span!("job").entered();
        },
    );
    assert_eq!(spans["job 1"].resource["service.instance.id"], "pod-7");
}

#[test]
fn server_and_client_spans_carry_the_http_conventions_with_their_types() {
    let receiver = OtlpReceiver::start();
    let spans = exported(&receiver, None, &[], 2, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut server = HttpServerLayer::new()
                .make_span(DefaultServerSpan::new())
                .layer(Created);
            let mut request = Request::builder()
                .uri("/orders?secret=1")
                .header("host", "shop.example:8080")
                .header("user-agent", "curl/8.5.0")
                .body(())
                .unwrap();
            request
                .extensions_mut()
                .insert("203.0.113.9:51000".parse::<SocketAddr>().unwrap());
            let response = server.call(request).await.unwrap();
            assert_eq!(response.status(), 201);
            drop(response);

            let mut client = HttpClientLayer::new().layer(Created);
            let request = Request::builder()
                .uri("https://bob:pw@api.example/v1/items?token=abc&page=2")
                .body(())
                .unwrap();
            let response = client.call(request).await.unwrap();
            drop(response);
        });
    });

    let of_kind = |kind: i32| {
        spans
            .values()
            .find(|span| span.kind == kind)
            .unwrap_or_else(|| panic!("no span of kind {kind}: {spans:#?}"))
    };
    // Both are named after the method; 2 is SPAN_KIND_SERVER, 3 CLIENT.
    let server = &of_kind(2).attributes;
    assert_eq!(server["http.request.method"], Attr::str("GET"));
    assert_eq!(server["url.scheme"], Attr::str("http"));
    assert_eq!(server["url.path"], Attr::str("/orders"));
    assert_eq!(server["server.address"], Attr::str("shop.example"));
    assert_eq!(server["server.port"], Attr::Int(8080));
    assert_eq!(server["client.address"], Attr::str("203.0.113.9"));
    assert_eq!(server["user_agent.original"], Attr::str("curl/8.5.0"));
    assert_eq!(server["network.protocol.version"], Attr::str("1.1"));
    assert_eq!(server["http.response.status_code"], Attr::Int(201));
    assert!(
        !server
            .keys()
            .any(|k| k.starts_with("code.") || k.ends_with("_ns")),
        "{server:?}"
    );
    let client = &of_kind(3).attributes;
    assert_eq!(
        client["url.full"],
        Attr::str("https://REDACTED:REDACTED@api.example/v1/items?token=REDACTED&page=REDACTED")
    );
    assert_eq!(client["server.address"], Attr::str("api.example"));
    assert_eq!(client["server.port"], Attr::Int(443));
    assert_eq!(client["http.response.status_code"], Attr::Int(201));
}
