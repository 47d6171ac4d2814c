//! The spans the middleware opens, and how to shape your own.

use std::borrow::Cow;
use std::net::SocketAddr;

use http::{Extensions, Request, Version};
use tracing::field::Empty;
use tracing::Span;

use super::grpc;
use crate::semconv::{default_port, method_name, redacted_full_url, server_authority};

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

/// How to find the peer's address of a request.
type PeerOf = fn(&Extensions) -> Option<SocketAddr>;

/// The peer address a server put in the request's extensions as a plain
/// `SocketAddr`, the default for `client.address`.
fn socket_addr_extension(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<SocketAddr>().copied()
}

/// The default server span: an `INFO` span named `request` with
/// OpenTelemetry's HTTP server attributes:
///
/// `otel.name` (`GET`, or `GET /users/{id}` when the route is known),
/// `otel.kind = "server"`, `http.request.method` (`_OTHER` for non-standard
/// methods), `url.scheme`, `url.path`, `http.route`, `server.address` and
/// `server.port` (from the request target's authority, else the `Host`
/// header; the port is the scheme's default when none is written),
/// `client.address` (the peer's IP, when known: see
/// [`DefaultServerSpan::with_client_address`]), `user_agent.original`,
/// `network.protocol.version`, and, recorded later,
/// `http.response.status_code`, `otel.status_code`, `error.type`,
/// `link.trace_id`, `link.span_id`. Ports and status codes are `i64`, so
/// they are exported as integers.
///
/// `url.scheme` is the request target's scheme when it has one (HTTP/2,
/// absolute form), else `http`: a server behind TLS says so with
/// [`DefaultServerSpan::with_scheme`]. The query string is not recorded: it
/// often carries secrets.
///
/// A gRPC request (`content-type: application/grpc*`) gets OpenTelemetry's
/// RPC attributes instead of the HTTP ones: `otel.name` =
/// `package.Service/Method`, `rpc.system = "grpc"`, `rpc.service`,
/// `rpc.method`, `server.address`, `server.port`, `client.address`,
/// `network.protocol.version`, and, recorded when the status is known,
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
#[derive(Debug, Clone, Copy)]
pub struct DefaultServerSpan {
    route: Option<RouteOf>,
    peer: PeerOf,
    scheme: &'static str,
}

impl Default for DefaultServerSpan {
    fn default() -> Self {
        Self {
            route: None,
            peer: socket_addr_extension,
            scheme: "http",
        }
    }
}

impl DefaultServerSpan {
    /// The default span, without a route; `client.address` from a
    /// `SocketAddr` in the request's extensions.
    ///
    /// ```
    /// let _make_span = tracing_correlation::DefaultServerSpan::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the peer's address from the request's extensions, for
    /// `client.address` (by default a plain `SocketAddr` extension). With
    /// axum's `into_make_service_with_connect_info::<SocketAddr>()`:
    ///
    /// ```
    /// use std::net::SocketAddr;
    ///
    /// // .with_client_address(|ext| ext.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0))
    /// let _make_span = tracing_correlation::DefaultServerSpan::new()
    ///     .with_client_address(|ext| ext.get::<SocketAddr>().copied());
    /// ```
    #[must_use]
    pub fn with_client_address(mut self, peer: fn(&Extensions) -> Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// The `url.scheme` of requests whose target names none (HTTP/1
    /// origin form): `http` by default; `https` for a server that terminates
    /// TLS itself.
    ///
    /// ```
    /// let _make_span = tracing_correlation::DefaultServerSpan::new().with_scheme("https");
    /// ```
    #[must_use]
    pub fn with_scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = scheme;
        self
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
        let scheme = request.uri().scheme_str().unwrap_or(self.scheme);
        let authority = server_authority(request.uri(), request.headers());
        let server_address = authority.map(|(host, _)| host);
        let server_port = authority
            .and_then(|(_, port)| port.or_else(|| default_port(Some(scheme))))
            .map(i64::from);
        let client_address = (self.peer)(request.extensions()).map(|peer| peer.ip().to_string());
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
                server.address = server_address,
                server.port = server_port,
                client.address = client_address.as_deref(),
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
            url.scheme = scheme,
            url.path = request.uri().path(),
            http.route = route,
            server.address = server_address,
            server.port = server_port,
            client.address = client_address.as_deref(),
            user_agent.original = request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|agent| agent.to_str().ok()),
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
/// `url.full` (for an absolute URI: user info as `REDACTED:REDACTED`, every
/// query value as `REDACTED`, names kept), `server.address`, `server.port`
/// (an `i64`; the scheme's default when none is written), `url.path`, and,
/// recorded on the response,
/// `http.response.status_code`, `otel.status_code`, `error.type`.
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
        let port = uri
            .port_u16()
            .or_else(|| default_port(uri.scheme_str()))
            .map(i64::from);
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
            url.full = redacted_full_url(uri).as_deref(),
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
