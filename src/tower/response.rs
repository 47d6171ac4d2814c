//! The response future shared by the server and client services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{self, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use opentelemetry::Context;
use tracing::Span;

use super::body::{AwaitingTrailers, ResponseBody};
use super::completion::{RequestOutcome, Tracker};
use super::grpc;
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
    /// status on the span and writes the completion line (see
    /// [`HttpServerLayer::completion_line`](crate::HttpServerLayer::completion_line)).
    /// Dropped before it completes, it records and writes a cancelled (or,
    /// while a panic unwinds through it, a panicked) request.
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
        // Taken when the request is finished; `None` for skipped requests.
        tracker: Option<Tracker>,
    }

    impl<F> PinnedDrop for HttpResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(tracker) = this.tracker.take() {
                // Dropped unfinished: cancelled, or unwinding from a panic in
                // the inner future's `poll`.
                let _entered = this.span.enter();
                let _attached = this.detached.clone().map(Context::attach);
                tracker.finish_dropped(this.span);
            }
        }
    }
}

impl<F> HttpResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        span: Span,
        detached: Option<Context>,
        side: Side,
        tracker: Option<Tracker>,
    ) -> Self {
        Self {
            inner,
            span,
            detached,
            side,
            tracker,
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
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _attached = this.detached.clone().map(Context::attach);
        let Poll::Ready(result) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        let tracker = this.tracker.take();
        match result {
            Ok(mut response) => {
                if let Side::Server { traceparent: true } = this.side {
                    insert_traceparent(this.span, &mut response);
                }
                let awaiting = tracker.and_then(|tracker| {
                    finish_or_await(tracker, this.span, this.detached.as_ref(), &response)
                });
                let (parts, body) = response.into_parts();
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    ResponseBody::new(body, awaiting),
                )))
            }
            Err(error) => {
                if let Some(tracker) = tracker {
                    tracker.finish(this.span, RequestOutcome::Error(std::any::type_name::<E>()));
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

/// Finishes the request on its response head, or — for a gRPC call whose
/// status is not in the headers — hands it to the body, to be finished when
/// the trailers arrive.
fn finish_or_await<B>(
    tracker: Tracker,
    span: &Span,
    detached: Option<&Context>,
    response: &Response<B>,
) -> Option<Box<AwaitingTrailers>> {
    let status = response.status();
    if tracker.is_grpc() {
        // A trailers-only response (how errors are usually sent) has the
        // status in its headers.
        if let Some(code) = grpc::status_of(response.headers()) {
            tracker.finish(span, RequestOutcome::Grpc(code));
            return None;
        }
        // A 200 carries the status in its trailers; anything else failed
        // below gRPC (a proxy, a missing route) and is reported as HTTP.
        if status == StatusCode::OK {
            return Some(Box::new(AwaitingTrailers {
                tracker: Some(tracker),
                span: span.clone(),
                detached: detached.cloned(),
            }));
        }
    }
    tracker.finish(span, RequestOutcome::Http(status));
    None
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
