//! The response future shared by the server and client services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{self, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use opentelemetry::Context;
use tracing::Span;

use crate::TraceIds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Returns the request span's `traceparent` when `true`.
    Server {
        traceparent: bool,
    },
    Client,
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpServerService`](crate::HttpServerService)
    /// and [`HttpClientService`](crate::HttpClientService): polls the inner
    /// future with the request span entered (so everything it logs, and every
    /// span it opens, belongs to the request), then records the response
    /// status on the span.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use tower_layer::Layer;
    /// use tower_service::Service;
    /// use tracing_correlation::{HttpResponseFuture, HttpServerLayer};
    ///
    /// #[derive(Clone)]
    /// struct Hello;
    /// impl Service<Request<()>> for Hello {
    ///     type Response = Response<&'static str>;
    ///     type Error = Infallible;
    ///     type Future = std::future::Ready<Result<Self::Response, Infallible>>;
    ///     fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
    ///         std::task::Poll::Ready(Ok(()))
    ///     }
    ///     fn call(&mut self, _: Request<()>) -> Self::Future {
    ///         std::future::ready(Ok(Response::new("hello")))
    ///     }
    /// }
    ///
    /// let mut service = HttpServerLayer::new().layer(Hello);
    /// let _future: HttpResponseFuture<_> = service.call(Request::new(()));
    /// ```
    pub struct HttpResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // The incoming context, kept only when the span is filtered out and
        // cannot carry it; attached around each poll instead.
        detached: Option<Context>,
        side: Side,
    }
}

impl<F> HttpResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Span, detached: Option<Context>, side: Side) -> Self {
        Self {
            inner,
            span,
            detached,
            side,
        }
    }
}

impl<F> fmt::Debug for HttpResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponseFuture")
            .field("span", &self.span)
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for HttpResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _attached = this.detached.clone().map(Context::attach);
        let Poll::Ready(mut result) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        if let Ok(response) = &mut result {
            record_status(this.span, response.status(), *this.side);
            if let Side::Server { traceparent: true } = this.side {
                insert_traceparent(this.span, response);
            }
        } else {
            this.span.record("otel.status_code", "ERROR");
            this.span.record("error.type", "_OTHER");
        }
        Poll::Ready(result)
    }
}

/// Records the status; 5xx are errors for a server, 4xx and 5xx for a client
/// (OpenTelemetry's HTTP span status rules).
fn record_status(span: &Span, status: StatusCode, side: Side) {
    span.record("http.response.status_code", status.as_u16());
    let error = match side {
        Side::Server { .. } => status.is_server_error(),
        Side::Client => status.is_client_error() || status.is_server_error(),
    };
    if error {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
}

/// Sets `traceparent` on the response to the request span's ids (nothing when
/// the span has none: filtered out, or no correlation layer).
fn insert_traceparent<B>(span: &Span, response: &mut Response<B>) {
    if let Some(ids) = TraceIds::from_span(span) {
        if let Ok(value) = HeaderValue::from_str(&ids.to_string()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("traceparent"), value);
        }
    }
}
