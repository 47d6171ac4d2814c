//! The response body the middleware hands on: the inner body unchanged,
//! except that a gRPC call whose status is still to come (in the trailers)
//! is finished when they arrive.

use std::fmt;
use std::pin::Pin;
use std::task::{self, Poll};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::Context;
use tracing::Span;

use super::completion::{RequestOutcome, Tracker};
use super::grpc;

/// A gRPC call waiting for its `grpc-status` trailer.
#[derive(Debug)]
pub(crate) struct AwaitingTrailers {
    /// Taken when the call is finished.
    pub(crate) tracker: Option<Tracker>,
    pub(crate) span: Span,
    pub(crate) detached: Option<Context>,
}

pin_project_lite::pin_project! {
    /// The body of responses from [`HttpServerService`](crate::HttpServerService)
    /// and [`HttpClientService`](crate::HttpClientService): the inner body,
    /// frame for frame.
    ///
    /// For a gRPC call whose response headers carry no `grpc-status` (every
    /// successful call, and errors sent after data), the status arrives in the
    /// trailers at the end of this body: until then the body keeps the
    /// request span open and entered while it is polled (so a streaming
    /// handler's lines carry the request's ids), and the completion line is
    /// written when the trailers arrive — or, if the body is dropped first,
    /// as a cancelled request. For every other response this body is a plain
    /// pass-through.
    ///
    /// ```
    /// use http_body_util::BodyExt as _;
    /// use tracing_correlation::ResponseBody;
    ///
    /// // Read like any other body; for gRPC, reading to the end is what
    /// // completes the call.
    /// async fn text<B: http_body::Body>(
    ///     response: http::Response<ResponseBody<B>>,
    /// ) -> Result<String, B::Error> {
    ///     let bytes = response.into_body().collect().await?.to_bytes();
    ///     Ok(String::from_utf8_lossy(&bytes).into_owned())
    /// }
    /// # let _ = text::<String>;
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        awaiting: Option<Box<AwaitingTrailers>>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(awaiting) = this.awaiting.as_mut() {
                let _entered = awaiting.span.enter();
                let _attached = awaiting.detached.clone().map(Context::attach);
                if let Some(tracker) = awaiting.tracker.take() {
                    tracker.finish_dropped(&awaiting.span);
                }
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, awaiting: Option<Box<AwaitingTrailers>>) -> Self {
        Self { inner, awaiting }
    }

    /// The inner body.
    ///
    /// ```
    /// use tracing_correlation::ResponseBody;
    ///
    /// fn inner(body: &ResponseBody<String>) -> &str {
    ///     body.get_ref()
    /// }
    /// # let _ = inner;
    /// ```
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("awaiting_trailers", &self.awaiting.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(awaiting) = this.awaiting.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let entered = awaiting.span.enter();
        let attached = awaiting.detached.clone().map(Context::attach);
        let poll = this.inner.as_mut().poll_frame(cx);
        let outcome = match &poll {
            Poll::Ready(Some(Ok(frame))) => match frame.trailers_ref() {
                Some(trailers) => Some(RequestOutcome::Grpc(
                    grpc::status_of(trailers).unwrap_or(grpc::MISSING_STATUS),
                )),
                // Data that ends the stream: no trailers will follow.
                None if this.inner.is_end_stream() => {
                    Some(RequestOutcome::Grpc(grpc::MISSING_STATUS))
                }
                None => None,
            },
            Poll::Ready(Some(Err(_))) => {
                Some(RequestOutcome::Error(std::any::type_name::<B::Error>()))
            }
            Poll::Ready(None) => Some(RequestOutcome::Grpc(grpc::MISSING_STATUS)),
            Poll::Pending => None,
        };
        let Some(outcome) = outcome else {
            return poll;
        };
        if let Some(tracker) = awaiting.tracker.take() {
            tracker.finish(&awaiting.span, outcome);
        }
        drop(attached);
        drop(entered);
        // Exited first: the span may close here.
        *this.awaiting = None;
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
