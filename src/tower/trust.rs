//! Whether an incoming trace context is continued or only linked.

use http::Request;

/// Decides, per request, whether the caller's trace context is trusted.
///
/// * **Trusted** (the default, `true`): the request span continues the
///   caller's trace — same trace id, the caller's span as parent — and the
///   caller's baggage is visible to the handler and its log lines.
/// * **Untrusted** (`false`): the request span starts a new trace; the
///   caller's context, if valid, is recorded as a *link*
///   (`link.trace_id` / `link.span_id` span fields, and an OpenTelemetry span
///   link when spans are exported). The caller's `tracestate` and baggage are
///   dropped, so a public client can neither choose your trace ids, nor the
///   sampling decision, nor what baggage reaches your logs.
///
/// Implemented for `bool` and for closures `Fn(&Request<B>) -> bool`, for
/// example to trust only requests from inside the cluster.
///
/// ```
/// use http::Request;
/// use tracing_correlation::HttpServerLayer;
///
/// // A public edge: never continue a caller's trace.
/// let edge = HttpServerLayer::new().trust_incoming(false);
/// // Trust callers that came through the internal gateway.
/// let internal = HttpServerLayer::new().trust_incoming(|request: &Request<()>| {
///     request.headers().contains_key("x-internal-gateway")
/// });
/// # drop((edge, internal));
/// ```
pub trait TrustIncoming<B> {
    /// Whether `request`'s trace context should be continued.
    fn is_trusted(&self, request: &Request<B>) -> bool;
}

impl<B> TrustIncoming<B> for bool {
    fn is_trusted(&self, _request: &Request<B>) -> bool {
        *self
    }
}

impl<B, F> TrustIncoming<B> for F
where
    F: Fn(&Request<B>) -> bool,
{
    fn is_trusted(&self, request: &Request<B>) -> bool {
        self(request)
    }
}
