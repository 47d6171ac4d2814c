//! The client middleware: pass the current trace on to the callee.

use std::fmt;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::Context;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Level;

use super::body::ResponseBody;
use super::completion::{CompletionLine, RequestOutcome, Tracker};
use super::make_span::{DefaultClientSpan, MakeRequestSpan};
use super::propagation::Propagation;
use super::response::{HttpResponseFuture, Side};

/// A tower layer for HTTP clients: each outgoing request gets a client span,
/// a child of the current span, and carries that span's context in its
/// `traceparent` / `tracestate` / `baggage` headers (replacing any already
/// there).
///
/// The response future is polled with the client span entered, and the
/// response status is recorded on it (4xx and 5xx count as errors; for gRPC,
/// every non-zero status). A [completion line](Self::completion_line) per
/// call is optional.
///
/// ```
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower_layer::Layer;
/// use tracing_correlation::HttpClientLayer;
///
/// let client = Client::builder(TokioExecutor::new()).build_http::<String>();
/// let traced = HttpClientLayer::new().layer(client);
/// # drop(traced);
/// ```
#[derive(Clone)]
pub struct HttpClientLayer<M = DefaultClientSpan> {
    make_span: M,
    propagation: Propagation,
    line: CompletionLine,
}

impl HttpClientLayer {
    /// Injects with the global propagator, with the default client span.
    ///
    /// ```
    /// let _layer = tracing_correlation::HttpClientLayer::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            make_span: DefaultClientSpan::new(),
            propagation: Propagation::default(),
            line: CompletionLine::new(false),
        }
    }
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> HttpClientLayer<M> {
    /// Builds client spans with `make_span` instead of [`DefaultClientSpan`].
    ///
    /// ```
    /// use http::Request;
    ///
    /// let _layer = tracing_correlation::HttpClientLayer::new()
    ///     .make_span(|_: &Request<String>| tracing::info_span!("call_inventory", otel.kind = "client"));
    /// ```
    #[must_use]
    pub fn make_span<M2>(self, make_span: M2) -> HttpClientLayer<M2> {
        HttpClientLayer {
            make_span,
            propagation: self.propagation,
            line: self.line,
        }
    }

    /// Injects with `propagator` instead of the global one.
    ///
    /// ```
    /// use tracing_correlation::{HttpClientLayer, W3cPropagator};
    ///
    /// let _layer = HttpClientLayer::new().propagator(W3cPropagator::new());
    /// ```
    #[must_use]
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.propagation = Propagation::custom(propagator);
        self
    }

    /// Whether to write one completion line per call (off by default):
    /// inside the client span, when the response head arrives (for gRPC:
    /// when the response body's trailers do), or when the response future
    /// is dropped first. The same fields as the server's line
    /// ([`HttpServerLayer::completion_line`](crate::HttpServerLayer::completion_line)),
    /// with `http.client.request.duration` (seconds); for a client, 4xx
    /// responses and non-zero gRPC codes are errors (`error.type`).
    ///
    /// ```
    /// let _layer = tracing_correlation::HttpClientLayer::new().completion_line(true);
    /// ```
    #[must_use]
    pub fn completion_line(mut self, on: bool) -> Self {
        self.line.set_enabled(on);
        self
    }

    /// Chooses the completion line's level from the call's
    /// [`RequestOutcome`] (`None`: no line); the default is
    /// [`RequestOutcome::default_level`].
    ///
    /// ```
    /// use tracing::Level;
    /// use tracing_correlation::{HttpClientLayer, RequestOutcome};
    ///
    /// // Every call at DEBUG, whatever its outcome.
    /// let _layer = HttpClientLayer::new()
    ///     .completion_line(true)
    ///     .completion_level(|_: &RequestOutcome| Some(Level::DEBUG));
    /// ```
    #[must_use]
    pub fn completion_level<F>(mut self, policy: F) -> Self
    where
        F: Fn(&RequestOutcome) -> Option<Level> + Send + Sync + 'static,
    {
        self.line.set_policy(policy);
        self
    }
}

impl<M> fmt::Debug for HttpClientLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer")
            .field("make_span", &std::any::type_name::<M>())
            .field("propagator", &self.propagation)
            .field("completion_line", &self.line)
            .finish()
    }
}

impl<S, M: Clone> Layer<S> for HttpClientLayer<M> {
    type Service = HttpClientService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientService {
            inner,
            make_span: self.make_span.clone(),
            propagation: self.propagation.clone(),
            line: self.line.clone(),
        }
    }
}

/// The service [`HttpClientLayer`] wraps around a client.
///
/// ```
/// use tower_layer::Layer;
/// use tracing_correlation::{HttpClientLayer, HttpClientService};
///
/// let service: HttpClientService<()> = HttpClientLayer::new().layer(());
/// # drop(service);
/// ```
#[derive(Clone)]
pub struct HttpClientService<S, M = DefaultClientSpan> {
    inner: S,
    make_span: M,
    propagation: Propagation,
    line: CompletionLine,
}

impl<S: fmt::Debug, M> fmt::Debug for HttpClientService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientService")
            .field("inner", &self.inner)
            .field("make_span", &std::any::type_name::<M>())
            .field("propagator", &self.propagation)
            .field("completion_line", &self.line)
            .finish()
    }
}

impl<S, B, ResB, M> Service<Request<B>> for HttpClientService<S, M>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    M: MakeRequestSpan<B>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let span = self.make_span.make_span(&request);
        let tracker = Tracker::new(&request, None, Side::Client, self.line.clone());
        let inner = {
            // Entered, the span's context is the current one (in both id
            // modes); filtered out, the caller's context is passed on as is.
            let _entered = span.enter();
            let current = Context::current();
            self.propagation.inject(&current, request.headers_mut());
            self.inner.call(request)
        };
        HttpResponseFuture::new(inner, span, None, Side::Client, Some(tracker))
    }
}
