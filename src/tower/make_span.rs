//! The spans the middleware opens, and how to shape your own.

use std::borrow::Cow;

use http::{Extensions, Request, Version};
use tracing::field::Empty;
use tracing::Span;

use super::grpc;
use crate::semconv::method_name;

/// Builds the span for one request: [`HttpServerLayer`](crate::HttpServerLayer)
/// calls it for each incoming request (while the caller's context is attached,
/// so a contextual span becomes its child), [`HttpClientLayer`](crate::HttpClientLayer)
/// for each outgoing one (as a child of the current span).
///
/// Implemented for closures `FnMut(&Request<B>) -> Span` and by
/// [`DefaultServerSpan`] / [`DefaultClientSpan`]. The middleware records, when
/// the span declares them (use `tracing::field::Empty`):
/// `http.response.status_code`, `otel.status_code` and `error.type` on the
/// response, and — server side, for untrusted callers — `link.trace_id` and
/// `link.span_id`.
///
/// ```
/// use http::Request;
/// use tracing::field::Empty;
/// use tracing_correlation::HttpServerLayer;
///
/// let layer = HttpServerLayer::new().make_span(|request: &Request<()>| {
///     tracing::info_span!(
///         "request",
///         otel.kind = "server",
///         http.request.method = %request.method(),
///         url.path = request.uri().path(),
///         http.response.status_code = Empty,
///         link.trace_id = Empty,
///         link.span_id = Empty,
///     )
/// });
/// # drop(layer);
/// ```
pub trait MakeRequestSpan<B> {
    /// The span for `request`; contextual (no explicit `parent:`), so that it
    /// is a child of the context the middleware attached.
    fn make_span(&mut self, request: &Request<B>) -> Span;

    /// The matched route template of `request` (`/users/{id}`), written as
    /// `http.route` on the completion line; `None` (the default) leaves it
    /// out. [`DefaultServerSpan::with_route`] answers it.
    ///
    /// ```
    /// use http::Request;
    /// use tracing_correlation::{DefaultServerSpan, MakeRequestSpan};
    ///
    /// let mut request = Request::new(());
    /// request.extensions_mut().insert("/users/{id}");
    /// let make_span = DefaultServerSpan::new().with_route(|ext| ext.get::<&'static str>().copied());
    /// assert_eq!(make_span.route(&request), Some("/users/{id}"));
    /// ```
    fn route<'r>(&self, request: &'r Request<B>) -> Option<&'r str> {
        let _ = request;
        None
    }
}

impl<B, F> MakeRequestSpan<B> for F
where
    F: FnMut(&Request<B>) -> Span,
{
    fn make_span(&mut self, request: &Request<B>) -> Span {
        self(request)
    }
}

/// How to find the matched route template of a request (`/users/{id}`).
type RouteOf = fn(&Extensions) -> Option<&str>;

/// The default server span: an `INFO` span named `request` with
/// OpenTelemetry's HTTP server attributes:
///
/// `otel.name` (`GET`, or `GET /users/{id}` when the route is known),
/// `otel.kind = "server"`, `http.request.method` (`_OTHER` for non-standard
/// methods), `url.path`, `http.route`, `network.protocol.version`, and,
/// recorded later, `http.response.status_code`, `otel.status_code`,
/// `error.type`, `link.trace_id`, `link.span_id`.
///
/// The query string is not recorded: it often carries secrets.
///
/// A gRPC request (`content-type: application/grpc*`) gets OpenTelemetry's
/// RPC attributes instead of the HTTP ones: `otel.name` =
/// `package.Service/Method`, `rpc.system = "grpc"`, `rpc.service`,
/// `rpc.method`, and, recorded when the status is known,
/// `rpc.grpc.status_code`, `otel.status_code` and `error.type` (the code's
/// name, for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
/// UNAVAILABLE and DATA_LOSS: the server-side errors of the conventions).
///
/// ```
/// use tracing_correlation::{DefaultServerSpan, HttpServerLayer};
///
/// // With axum, `http.route` comes from its `MatchedPath` extension:
/// // .with_route(|ext| ext.get::<axum::extract::MatchedPath>().map(|p| p.as_str()))
/// let make_span = DefaultServerSpan::new().with_route(|ext| ext.get::<&'static str>().copied());
/// let layer = HttpServerLayer::new().make_span(make_span);
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultServerSpan {
    route: Option<RouteOf>,
}

impl DefaultServerSpan {
    /// The default span, without a route.
    ///
    /// ```
    /// let _make_span = tracing_correlation::DefaultServerSpan::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the matched route template from the request's extensions, for
    /// `http.route` and `otel.name` (a path would make span names unbounded).
    ///
    /// ```
    /// let _make_span = tracing_correlation::DefaultServerSpan::new()
    ///     .with_route(|ext| ext.get::<String>().map(String::as_str));
    /// ```
    #[must_use]
    pub fn with_route(mut self, route: fn(&Extensions) -> Option<&str>) -> Self {
        self.route = Some(route);
        self
    }
}

impl<B> MakeRequestSpan<B> for DefaultServerSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        if grpc::is_grpc(request.headers()) {
            let path = request.uri().path();
            let (service, method) = grpc::split_path(path).unzip();
            return tracing::info_span!(
                "request",
                otel.name = grpc_span_name(path),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                network.protocol.version = protocol_version(request.version()),
                http.response.status_code = Empty,
                rpc.grpc.status_code = Empty,
                error.type = Empty,
                link.trace_id = Empty,
                link.span_id = Empty,
            );
        }
        let method = method_name(request.method());
        let route = self.route.and_then(|route| route(request.extensions()));
        let name: Cow<'_, str> = match route {
            Some(route) => Cow::Owned(format!("{method} {route}")),
            None => Cow::Borrowed(method),
        };
        tracing::info_span!(
            "request",
            otel.name = &*name,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            url.path = request.uri().path(),
            http.route = route,
            network.protocol.version = protocol_version(request.version()),
            http.response.status_code = Empty,
            error.type = Empty,
            link.trace_id = Empty,
            link.span_id = Empty,
        )
    }

    fn route<'r>(&self, request: &'r Request<B>) -> Option<&'r str> {
        self.route.and_then(|route| route(request.extensions()))
    }
}

/// The default client span: an `INFO` span named `client_request` with
/// OpenTelemetry's HTTP client attributes:
///
/// `otel.name` (the method), `otel.kind = "client"`, `http.request.method`,
/// `server.address`, `server.port`, `url.path`, and, recorded on the
/// response, `http.response.status_code`, `otel.status_code`, `error.type`.
///
/// `url.full` is not recorded: queries and user info often carry secrets.
///
/// A gRPC call (`content-type: application/grpc*`) gets the RPC attributes
/// instead: `otel.name` = `package.Service/Method`, `rpc.system = "grpc"`,
/// `rpc.service`, `rpc.method`, `server.address`, `server.port`, and, when
/// the status is known, `rpc.grpc.status_code`, with `otel.status_code` and
/// `error.type` (the code's name) for every non-zero code.
///
/// ```
/// use tracing_correlation::{DefaultClientSpan, HttpClientLayer};
///
/// let layer = HttpClientLayer::new().make_span(DefaultClientSpan::new());
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultClientSpan {
    _private: (),
}

impl DefaultClientSpan {
    /// The default client span.
    ///
    /// ```
    /// let _make_span = tracing_correlation::DefaultClientSpan::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<B> MakeRequestSpan<B> for DefaultClientSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let method = method_name(request.method());
        let uri = request.uri();
        let port = uri.port_u16().or_else(|| match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        if grpc::is_grpc(request.headers()) {
            let path = uri.path();
            let (service, rpc_method) = grpc::split_path(path).unzip();
            return tracing::info_span!(
                "client_request",
                otel.name = grpc_span_name(path),
                otel.kind = "client",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = rpc_method,
                server.address = uri.host(),
                server.port = port,
                http.response.status_code = Empty,
                rpc.grpc.status_code = Empty,
                error.type = Empty,
            );
        }
        tracing::info_span!(
            "client_request",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = method,
            server.address = uri.host(),
            server.port = port,
            url.path = uri.path(),
            http.response.status_code = Empty,
            error.type = Empty,
        )
    }
}

/// `package.Service/Method`, the span name the RPC conventions ask for; a
/// path of any other shape is not a bounded name, so `grpc` instead.
fn grpc_span_name(path: &str) -> &str {
    match grpc::split_path(path) {
        Some(_) => &path[1..],
        None => "grpc",
    }
}

fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}
