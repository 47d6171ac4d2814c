//! reqwest requests that carry the current trace (feature `reqwest`).
//!
//! [`RequestBuilderExt::send_traced`] is `RequestBuilder::send` with, for each
//! request, a client span (a child of the current span, with OpenTelemetry's
//! HTTP client attributes) whose W3C context is injected into the request's
//! `traceparent` / `tracestate` / `baggage` headers, so the callee continues
//! the caller's trace under that span.
//!
//! The span's fields, and why this is an extension trait rather than a
//! `reqwest-middleware` middleware, are documented on [`RequestBuilderExt`]
//! (this module is private; the trait is re-exported at the crate root).

use std::future::Future;

use ::reqwest::{Request, RequestBuilder, Response, StatusCode, Url};
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use crate::semconv::method_name;

/// `send_traced()` for `reqwest::RequestBuilder` (feature `reqwest`): send
/// the request with a client span, passing the current trace on to the
/// server.
///
/// ```no_run
/// use tracing_correlation::RequestBuilderExt as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), reqwest::Error> {
/// let client = reqwest::Client::new();
/// let response = client
///     .get("http://127.0.0.1:8080/orders/42")
///     .send_traced()
///     .await?;
/// tracing::info!(status = response.status().as_u16(), "inventory answered");
/// # Ok(())
/// # }
/// ```
///
/// # Why an extension trait, not a `reqwest-middleware` middleware
///
/// Both were weighed. A `reqwest_middleware::Middleware` runs for every
/// request of a `ClientWithMiddleware`, so no call site can forget it; but
/// it needs that wrapper client type everywhere a client is passed around
/// (functions taking `reqwest::Client` no longer fit), it adds
/// `reqwest-middleware` and its own dependencies to every build of the
/// feature, and it ties this crate to the `reqwest-middleware` release that
/// matches the user's `reqwest` — a second version pair to keep in step,
/// with mismatches failing to compile. The extension trait works on the
/// plain `reqwest::Client` and `RequestBuilder` users already have, adds no
/// dependency beyond `reqwest` itself, and is one word at each call site
/// (`.send()` → `.send_traced()`). A code base already built on
/// `reqwest-middleware` can keep its stack and call
/// [`inject_current_context`](crate::inject_current_context) on the request
/// headers in its own middleware.
///
/// # The client span
///
/// An `INFO` span named `client_request`, created when `send_traced` is
/// called, as a child of the current span:
///
/// | field | value |
/// | --- | --- |
/// | `otel.name` | the method (`GET`), the span's name once exported |
/// | `otel.kind` | `client` |
/// | `http.request.method` | `GET`, `POST`…; `_OTHER` for non-standard methods |
/// | `url.full` | the URL, with user info as `REDACTED:REDACTED`, every query value as `REDACTED` (names kept) and no fragment |
/// | `server.address`, `server.port` | host and port (the scheme's default port when none is given); the port as an `i64` |
/// | `http.response.status_code` | recorded on the response, as an `i64` |
/// | `otel.status_code`, `error.type` | `ERROR` and the status code for 4xx and 5xx; `ERROR` and `timeout`, `connect`, `redirect`, `body`, `decode`, `request` or `_OTHER` when reqwest fails |
///
/// The response future is polled with the span entered. A request that cannot
/// be built (an invalid URL) fails as with `send`, before any span is created.
/// The headers are injected with the global propagator (the strict W3C one
/// after [`init_json_logging`](crate::init_json_logging)), replacing any
/// `traceparent` already set; when the client span is filtered out, the
/// caller's own context is injected.
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub trait RequestBuilderExt: sealed::Sealed {
    /// Builds the request, opens its client span (a child of the current
    /// span) and injects the span's W3C context into the request headers,
    /// then sends it like `RequestBuilder::send`, polling the response
    /// future with the span entered and recording the status or the error
    /// on the span.
    ///
    /// The span is created and the headers are injected when this is
    /// called, so the future can be awaited or spawned anywhere.
    ///
    /// # Errors
    ///
    /// Exactly those of `RequestBuilder::send`.
    ///
    /// ```
    /// use tracing_correlation::RequestBuilderExt as _;
    ///
    /// let request = reqwest::Client::new().get("http://127.0.0.1:9/").send_traced();
    /// # drop(request);
    /// ```
    fn send_traced(self) -> impl Future<Output = Result<Response, ::reqwest::Error>> + Send;
}

impl RequestBuilderExt for RequestBuilder {
    fn send_traced(self) -> impl Future<Output = Result<Response, ::reqwest::Error>> + Send {
        let (client, request) = self.build_split();
        let prepared = request.map(|mut request| {
            let span = client_span(&request);
            let pending = {
                // Entered, the span's context is the current one (in both
                // id modes); filtered out, the caller's is passed on as is.
                let _entered = span.enter();
                crate::inject_current_context(request.headers_mut());
                client.execute(request)
            };
            (span, pending)
        });
        let started = std::time::Instant::now();
        async move {
            let (span, pending) = prepared?;
            let result = pending.instrument(span.clone()).await;
            match &result {
                Ok(response) => record_status(&span, response.status()),
                Err(error) => {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", error_type(error));
                }
            }
            completion_line(&span, &result, started.elapsed().as_secs_f64());
            result
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for reqwest::RequestBuilder {}
}

fn client_span(request: &Request) -> Span {
    let method = method_name(request.method());
    let url = request.url();
    tracing::info_span!(
        "client_request",
        otel.name = method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        url.full = redacted(url).as_str(),
        server.address = url.host_str(),
        server.port = url.port_or_known_default().map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// The line a finished request writes (target
/// `tracing_correlation::reqwest`), inside its client span: ERROR for a
/// 5xx answer or no answer, WARN for a 4xx, DEBUG otherwise (outgoing calls
/// are many; their successes are details).
fn completion_line(span: &Span, result: &Result<Response, ::reqwest::Error>, seconds: f64) {
    let _entered = span.enter();
    match result {
        Ok(response) => {
            let status = response.status();
            let code = i64::from(status.as_u16());
            if status.is_server_error() {
                tracing::event!(
                    target: "tracing_correlation::reqwest",
                    tracing::Level::ERROR,
                    http.response.status_code = code,
                    error.type = status.as_str(),
                    http.client.request.duration = seconds,
                    "request failed"
                );
            } else if status.is_client_error() {
                tracing::event!(
                    target: "tracing_correlation::reqwest",
                    tracing::Level::WARN,
                    http.response.status_code = code,
                    error.type = status.as_str(),
                    http.client.request.duration = seconds,
                    "request failed"
                );
            } else {
                tracing::event!(
                    target: "tracing_correlation::reqwest",
                    tracing::Level::DEBUG,
                    http.response.status_code = code,
                    http.client.request.duration = seconds,
                    "request completed"
                );
            }
        }
        Err(error) => tracing::event!(
            target: "tracing_correlation::reqwest",
            tracing::Level::ERROR,
            error.type = error_type(error),
            http.client.request.duration = seconds,
            "request failed"
        ),
    }
}

/// 4xx and 5xx are errors for a client (OpenTelemetry's HTTP span status
/// rules); the code is recorded as an `i64`, which OpenTelemetry exports as
/// an int (an unsigned field would become a string attribute).
fn record_status(span: &Span, status: StatusCode) {
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_client_error() || status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
}

/// A low-cardinality name for what went wrong, for `error.type`.
fn error_type(error: &::reqwest::Error) -> &'static str {
    // A connect timeout is both: report the timeout.
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_redirect() {
        "redirect"
    } else if error.is_body() {
        "body"
    } else if error.is_decode() {
        "decode"
    } else if error.is_request() {
        "request"
    } else {
        "_OTHER"
    }
}

/// `url.full` without what often carries secrets: user info becomes
/// `REDACTED` (`REDACTED:REDACTED` with a password), each query value
/// `REDACTED` (a query item without `=` entirely), and the fragment, which
/// is never sent, is dropped.
fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    if !url.username().is_empty() {
        // Only fails for URLs that cannot have credentials (no host), which
        // then have none to hide.
        let _ = url.set_username("REDACTED");
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("REDACTED"));
    }
    if let Some(query) = url.query().filter(|query| !query.is_empty()) {
        let mut kept = String::with_capacity(query.len());
        crate::semconv::push_redacted_query(query, &mut kept);
        url.set_query(Some(&kept));
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(url: &str) -> String {
        redacted(&Url::parse(url).expect("test URL"))
    }

    #[test]
    fn user_info_query_values_and_fragment_are_redacted() {
        assert_eq!(
            redact("https://alice:s3cret@example.com:8443/a/b?token=abc&page=2#top"),
            "https://REDACTED:REDACTED@example.com:8443/a/b?token=REDACTED&page=REDACTED"
        );
        assert_eq!(
            redact("http://alice@example.com/"),
            "http://REDACTED@example.com/"
        );
        assert_eq!(
            redact("http://example.com/x?apikey&a="),
            "http://example.com/x?REDACTED&a=REDACTED"
        );
    }

    #[test]
    fn a_url_without_secrets_is_kept_as_is() {
        assert_eq!(
            redact("http://127.0.0.1:3000/orders/42"),
            "http://127.0.0.1:3000/orders/42"
        );
        assert_eq!(redact("http://[::1]/?"), "http://[::1]/?");
    }
}
