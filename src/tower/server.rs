//! The server middleware: continue (or link) the caller's trace.

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::request::Parts;
use http::{Request, Response};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::body::ResponseBody;
use super::completion::{CompletionLine, RequestOutcome, Tracker};
use super::make_span::{DefaultServerSpan, MakeRequestSpan};
use super::propagation::Propagation;
use super::response::{HttpResponseFuture, Side};
use super::trust::TrustIncoming;
use crate::TraceIds;

/// A tower layer for HTTP servers: each request runs in a span that continues
/// the caller's W3C trace.
///
/// For each request it
/// 1. extracts `traceparent`, `tracestate` and `baggage` with the global
///    propagator (the strict W3C ones after [`init_json_logging`](crate::init_json_logging))
///    or the one given to [`HttpServerLayer::propagator`]; a missing or
///    malformed `traceparent` means a fresh trace, and the request is served
///    all the same;
/// 2. opens the request span ([`DefaultServerSpan`], or your
///    [`MakeRequestSpan`]) as a child of that context — or, for an untrusted
///    caller ([`TrustIncoming`]), as the root of a new trace linked to it;
/// 3. calls the inner service and polls its future with the span entered, so
///    every line logged while handling the request carries the request's
///    trace id, and the caller's baggage is in `Context::current()`;
/// 4. records `http.response.status_code` (and `otel.status_code` /
///    `error.type` for 5xx and errors; the gRPC status for gRPC calls),
///    optionally sets the response's `traceparent` to the request span's
///    ids, and writes one [completion line](Self::completion_line).
///
/// Requests matching [`skip_if`](Self::skip_if) go straight to the inner
/// service, untraced.
///
/// Work the handler moves elsewhere (`tokio::spawn`, `spawn_blocking`, other
/// threads) keeps the context only if it carries the span there (for example
/// with `tracing::Instrument` or `Span::in_scope`).
///
/// ```
/// use axum::{routing::get, Router};
/// use tracing_correlation::HttpServerLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(HttpServerLayer::new().response_traceparent(true));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct HttpServerLayer<M = DefaultServerSpan, T = bool> {
    make_span: M,
    trust: T,
    propagation: Propagation,
    response_traceparent: bool,
    line: CompletionLine,
    skip: Option<SkipRequest>,
}

/// A predicate for requests served without tracing (health checks).
type SkipRequest = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

impl HttpServerLayer {
    /// Continues every caller's trace, with the default span and the global
    /// propagator, and no response header.
    ///
    /// ```
    /// let _layer = tracing_correlation::HttpServerLayer::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            make_span: DefaultServerSpan::new(),
            trust: true,
            propagation: Propagation::default(),
            response_traceparent: false,
            line: CompletionLine::new(true),
            skip: None,
        }
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M, T> HttpServerLayer<M, T> {
    /// Builds request spans with `make_span` instead of [`DefaultServerSpan`].
    ///
    /// ```
    /// use tracing_correlation::{DefaultServerSpan, HttpServerLayer};
    ///
    /// let _layer = HttpServerLayer::new()
    ///     .make_span(DefaultServerSpan::new().with_route(|ext| ext.get::<String>().map(String::as_str)));
    /// ```
    #[must_use]
    pub fn make_span<M2>(self, make_span: M2) -> HttpServerLayer<M2, T> {
        HttpServerLayer {
            make_span,
            trust: self.trust,
            propagation: self.propagation,
            response_traceparent: self.response_traceparent,
            line: self.line,
            skip: self.skip,
        }
    }

    /// Chooses which callers' trace context is continued (see
    /// [`TrustIncoming`]); `true` by default. Use `false` on a public edge.
    ///
    /// ```
    /// let _edge = tracing_correlation::HttpServerLayer::new().trust_incoming(false);
    /// ```
    #[must_use]
    pub fn trust_incoming<T2>(self, trust: T2) -> HttpServerLayer<M, T2> {
        HttpServerLayer {
            make_span: self.make_span,
            trust,
            propagation: self.propagation,
            response_traceparent: self.response_traceparent,
            line: self.line,
            skip: self.skip,
        }
    }

    /// Extracts with `propagator` instead of the global one.
    ///
    /// ```
    /// use tracing_correlation::{HttpServerLayer, W3cPropagator};
    ///
    /// let _layer = HttpServerLayer::new().propagator(W3cPropagator::new());
    /// ```
    #[must_use]
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.propagation = Propagation::custom(propagator);
        self
    }

    /// Whether to set the response's `traceparent` header to the request
    /// span's ids (off by default), so a caller without tracing can still
    /// quote the trace id in a bug report.
    ///
    /// ```
    /// let _layer = tracing_correlation::HttpServerLayer::new().response_traceparent(true);
    /// ```
    #[must_use]
    pub fn response_traceparent(mut self, on: bool) -> Self {
        self.response_traceparent = on;
        self
    }

    /// Whether to write one completion line per request (on by default):
    /// inside the request span, when the response is produced, or when the
    /// response future is dropped first (a cancelled or panicking request),
    /// or — for a gRPC call whose status comes in the trailers — when the
    /// response body ends. Fields: `http.request.method`, `http.route`,
    /// `http.response.status_code`, `rpc.*` for gRPC, `error.type` for
    /// failures and `http.server.request.duration` (seconds); target
    /// `tracing_correlation::tower`. See [`completion_level`](Self::completion_level)
    /// for its level.
    ///
    /// ```
    /// // Lines only from the handlers, none from the middleware.
    /// let _layer = tracing_correlation::HttpServerLayer::new().completion_line(false);
    /// ```
    #[must_use]
    pub fn completion_line(mut self, on: bool) -> Self {
        self.line.set_enabled(on);
        self
    }

    /// Chooses the completion line's level from the request's
    /// [`RequestOutcome`]; `None` writes no line for it. The default is
    /// [`RequestOutcome::default_level`] (5xx `ERROR`, 4xx `WARN`, else
    /// `INFO`).
    ///
    /// ```
    /// use http::StatusCode;
    /// use tracing::Level;
    /// use tracing_correlation::{HttpServerLayer, RequestOutcome};
    ///
    /// // 404s are expected here: DEBUG. Successes: no line at all.
    /// let _layer = HttpServerLayer::new().completion_level(|outcome: &RequestOutcome| match outcome {
    ///     RequestOutcome::Http(StatusCode::NOT_FOUND) => Some(Level::DEBUG),
    ///     RequestOutcome::Http(status) if status.is_success() => None,
    ///     other => Some(other.default_level()),
    /// });
    /// ```
    #[must_use]
    pub fn completion_level<F>(mut self, policy: F) -> Self
    where
        F: Fn(&RequestOutcome) -> Option<Level> + Send + Sync + 'static,
    {
        self.line.set_policy(policy);
        self
    }

    /// Serves requests for which `skip` returns `true` without any tracing:
    /// no context is extracted, no span is created, no completion line is
    /// written (for health checks and readiness probes, which would drown
    /// the useful lines). The handler runs in whatever context the serving
    /// task has (none, under a plain server).
    ///
    /// ```
    /// use http::request::Parts;
    /// use tracing_correlation::HttpServerLayer;
    ///
    /// let _layer = HttpServerLayer::new()
    ///     .skip_if(|request: &Parts| matches!(request.uri.path(), "/health" | "/ready"));
    /// ```
    #[must_use]
    pub fn skip_if<F>(mut self, skip: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.skip = Some(Arc::new(skip));
        self
    }
}

impl<M, T> fmt::Debug for HttpServerLayer<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("make_span", &std::any::type_name::<M>())
            .field("trust", &std::any::type_name::<T>())
            .field("propagator", &self.propagation)
            .field("response_traceparent", &self.response_traceparent)
            .field("completion_line", &self.line)
            .field("skip", &self.skip.is_some())
            .finish()
    }
}

impl<S, M: Clone, T: Clone> Layer<S> for HttpServerLayer<M, T> {
    type Service = HttpServerService<S, M, T>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            make_span: self.make_span.clone(),
            trust: self.trust.clone(),
            propagation: self.propagation.clone(),
            response_traceparent: self.response_traceparent,
            line: self.line.clone(),
            skip: self.skip.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around an inner service.
///
/// ```
/// use tower_layer::Layer;
/// use tracing_correlation::{HttpServerLayer, HttpServerService};
///
/// let service: HttpServerService<()> = HttpServerLayer::new().layer(());
/// # drop(service);
/// ```
#[derive(Clone)]
pub struct HttpServerService<S, M = DefaultServerSpan, T = bool> {
    inner: S,
    make_span: M,
    trust: T,
    propagation: Propagation,
    response_traceparent: bool,
    line: CompletionLine,
    skip: Option<SkipRequest>,
}

impl<S: fmt::Debug, M, T> fmt::Debug for HttpServerService<S, M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerService")
            .field("inner", &self.inner)
            .field("make_span", &std::any::type_name::<M>())
            .field("trust", &std::any::type_name::<T>())
            .field("propagator", &self.propagation)
            .field("response_traceparent", &self.response_traceparent)
            .field("completion_line", &self.line)
            .field("skip", &self.skip.is_some())
            .field("completion_line", &self.line)
            .field("skip", &self.skip.is_some())
            .finish()
    }
}

impl<S, B, ResB, M, T> Service<Request<B>> for HttpServerService<S, M, T>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    M: MakeRequestSpan<B>,
    T: TrustIncoming<B>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = HttpResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let side = Side::Server {
            traceparent: self.response_traceparent,
        };
        let request = match &self.skip {
            Some(skip) => {
                let (parts, body) = request.into_parts();
                let skipped = skip(&parts);
                let request = Request::from_parts(parts, body);
                if skipped {
                    let inner = self.inner.call(request);
                    return HttpResponseFuture::new(inner, Span::none(), None, side, None);
                }
                request
            }
            None => request,
        };
        let incoming = self.propagation.extract(request.headers());
        let (parent, link) = if self.trust.is_trusted(&request) {
            (incoming, None)
        } else {
            let remote = incoming.span().span_context().clone();
            (Context::new(), remote.is_valid().then_some(remote))
        };
        // Both id sources take the context current at creation as the parent
        // of a contextual span (and keep its baggage).
        let span = {
            let _attached = parent.clone().attach();
            self.make_span.make_span(&request)
        };
        if let Some(remote) = link {
            record_link(&span, remote);
        }
        let detached = span.is_disabled().then_some(parent);
        let tracker = Tracker::new(
            &request,
            self.make_span.route(&request),
            side,
            self.line.clone(),
        );
        let inner = {
            let _entered = span.enter();
            let _attached = detached.clone().map(Context::attach);
            self.inner.call(request)
        };
        HttpResponseFuture::new(inner, span, detached, side, Some(tracker))
    }
}

/// Links the request span to an untrusted caller's context: as span fields
/// (seen on every line, in both modes) and as an OpenTelemetry link (exported
/// spans; a no-op without the OpenTelemetry layer).
fn record_link(span: &Span, remote: SpanContext) {
    if let Some(ids) = TraceIds::from_span_context(&remote) {
        span.record("link.trace_id", ids.trace_id_hex().as_str());
        span.record("link.span_id", ids.span_id_hex().as_str());
    }
    span.add_link(remote);
}
