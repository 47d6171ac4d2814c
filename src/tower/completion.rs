//! How a request ended, recorded on its span and written as one completion
//! line inside it.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, StatusCode};
use tracing::{Level, Span};

use super::grpc::{self, GrpcCall};
use super::response::Side;
use crate::semconv::method_name;

/// The target of completion lines, for filters
/// (`RUST_LOG=tracing_correlation::tower=off` silences them).
pub(crate) const TARGET: &str = "tracing_correlation::tower";

/// How a request ended, as the completion line's level policy sees it (see
/// [`HttpServerLayer::completion_level`](crate::HttpServerLayer::completion_level)).
///
/// ```
/// use http::StatusCode;
/// use tracing::Level;
/// use tracing_correlation::RequestOutcome;
///
/// assert_eq!(RequestOutcome::Http(StatusCode::NOT_FOUND).default_level(), Level::WARN);
/// assert_eq!(RequestOutcome::Grpc(13).default_level(), Level::ERROR);
/// assert_eq!(RequestOutcome::Cancelled.default_level(), Level::WARN);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// An HTTP response with this status (for gRPC: a response without
    /// `grpc-status` whose HTTP status is not 200).
    Http(StatusCode),
    /// A gRPC call that ended with this `grpc-status` code (from the
    /// response headers, or from the trailers at the end of the body).
    Grpc(i32),
    /// The inner service, or the response body, returned an error of this
    /// type (`std::any::type_name`).
    Error(&'static str),
    /// Dropped before completing: the caller went away, a timeout fired, or
    /// the response body was dropped before its gRPC trailers.
    Cancelled,
    /// Dropped while a panic unwound through it (a panicking handler).
    Panicked,
}

impl RequestOutcome {
    /// The level the completion line has unless a policy says otherwise:
    /// `ERROR` for HTTP 5xx, gRPC server-error codes (UNKNOWN,
    /// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS),
    /// errors and panics; `WARN` for HTTP 4xx, other non-zero gRPC codes and
    /// cancellations; `INFO` otherwise.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tracing::Level;
    /// use tracing_correlation::RequestOutcome;
    ///
    /// assert_eq!(RequestOutcome::Http(StatusCode::OK).default_level(), Level::INFO);
    /// assert_eq!(RequestOutcome::Http(StatusCode::BAD_GATEWAY).default_level(), Level::ERROR);
    /// assert_eq!(RequestOutcome::Grpc(5).default_level(), Level::WARN);
    /// assert_eq!(RequestOutcome::Panicked.default_level(), Level::ERROR);
    /// ```
    #[must_use]
    pub fn default_level(&self) -> Level {
        match *self {
            Self::Http(status) if status.is_server_error() => Level::ERROR,
            Self::Http(status) if status.is_client_error() => Level::WARN,
            Self::Http(_) | Self::Grpc(0) => Level::INFO,
            Self::Grpc(code) if grpc::is_server_error(code) => Level::ERROR,
            Self::Grpc(_) | Self::Cancelled => Level::WARN,
            Self::Error(_) | Self::Panicked => Level::ERROR,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Self::Http(_) | Self::Grpc(_) => "request completed",
            Self::Error(_) => "request failed",
            Self::Cancelled => "request cancelled",
            Self::Panicked => "request panicked",
        }
    }

    /// `error.type` per OpenTelemetry's conventions: the status code for
    /// HTTP server 5xx (client: 4xx and 5xx), the code's name for failed gRPC
    /// calls (server: the server-error codes; client: any non-zero code).
    fn error_type(&self, side: Side) -> Option<&str> {
        match self {
            Self::Http(status) => {
                let failed = match side {
                    Side::Server { .. } => status.is_server_error(),
                    Side::Client => status.is_client_error() || status.is_server_error(),
                };
                failed.then(|| status.as_str())
            }
            Self::Grpc(code) => {
                let failed = match side {
                    Side::Server { .. } => grpc::is_server_error(*code),
                    Side::Client => *code != 0,
                };
                failed.then(|| grpc::code_name(*code))
            }
            Self::Error(type_name) => Some(type_name),
            Self::Cancelled => Some("cancelled"),
            Self::Panicked => Some("panic"),
        }
    }
}

/// A user's level policy.
type LevelPolicy = Arc<dyn Fn(&RequestOutcome) -> Option<Level> + Send + Sync>;

/// Whether the completion line is written, and at which level.
#[derive(Clone)]
pub(crate) struct CompletionLine {
    enabled: bool,
    policy: Option<LevelPolicy>,
}

impl CompletionLine {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            policy: None,
        }
    }

    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub(crate) fn set_policy<F>(&mut self, policy: F)
    where
        F: Fn(&RequestOutcome) -> Option<Level> + Send + Sync + 'static,
    {
        self.policy = Some(Arc::new(policy));
    }

    fn level(&self, outcome: &RequestOutcome) -> Option<Level> {
        if !self.enabled {
            return None;
        }
        match &self.policy {
            Some(policy) => policy(outcome),
            None => Some(outcome.default_level()),
        }
    }
}

impl fmt::Debug for CompletionLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionLine")
            .field("enabled", &self.enabled)
            .field(
                "levels",
                &if self.policy.is_some() {
                    "custom"
                } else {
                    "default"
                },
            )
            .finish()
    }
}

/// What one in-flight request needs to record its end.
#[derive(Debug)]
pub(crate) struct Tracker {
    start: Instant,
    side: Side,
    line: CompletionLine,
    method: &'static str,
    route: Option<Box<str>>,
    grpc: Option<GrpcCall>,
}

impl Tracker {
    pub(crate) fn new<B>(
        request: &Request<B>,
        route: Option<&str>,
        side: Side,
        line: CompletionLine,
    ) -> Self {
        Self {
            start: Instant::now(),
            side,
            line,
            method: method_name(request.method()),
            route: route.map(Box::from),
            grpc: grpc::is_grpc(request.headers()).then(|| GrpcCall::from_uri(request.uri())),
        }
    }

    /// Whether the request was gRPC (its status may be in the trailers).
    pub(crate) fn is_grpc(&self) -> bool {
        self.grpc.is_some()
    }

    /// Records `outcome` on `span` and writes the completion line; the
    /// caller has the span entered (or, when it is disabled, the caller's
    /// context attached).
    pub(crate) fn finish(self, span: &Span, outcome: RequestOutcome) {
        let error_type = outcome.error_type(self.side);
        record(span, &outcome, error_type);
        if let Some(level) = self.line.level(&outcome) {
            self.write(level, &outcome, error_type);
        }
    }

    /// The request's future or body was dropped before the end.
    pub(crate) fn finish_dropped(self, span: &Span) {
        let outcome = if std::thread::panicking() {
            RequestOutcome::Panicked
        } else {
            RequestOutcome::Cancelled
        };
        self.finish(span, outcome);
    }

    fn write(&self, level: Level, outcome: &RequestOutcome, error_type: Option<&str>) {
        let duration = self.start.elapsed().as_secs_f64();
        let status = match outcome {
            RequestOutcome::Http(status) => Some(i64::from(status.as_u16())),
            // A gRPC response that got that far was an HTTP 200.
            RequestOutcome::Grpc(_) => Some(200),
            _ => None,
        };
        let grpc_code = match outcome {
            RequestOutcome::Grpc(code) => Some(i64::from(*code)),
            _ => None,
        };
        let route = self.route.as_deref();
        let rpc_system = self.grpc.as_ref().map(|_| "grpc");
        let rpc_service = self.grpc.as_ref().and_then(GrpcCall::service);
        let rpc_method = self.grpc.as_ref().and_then(GrpcCall::method);
        let message = outcome.message();
        macro_rules! line {
            ($level:expr, $($duration:ident).+) => {
                tracing::event!(
                    target: TARGET,
                    $level,
                    http.request.method = self.method,
                    http.route = route,
                    http.response.status_code = status,
                    rpc.system = rpc_system,
                    rpc.service = rpc_service,
                    rpc.method = rpc_method,
                    rpc.grpc.status_code = grpc_code,
                    error.type = error_type,
                    $($duration).+ = duration,
                    "{message}"
                )
            };
        }
        macro_rules! at_level {
            ($($duration:ident).+) => {
                if level == Level::ERROR {
                    line!(Level::ERROR, $($duration).+);
                } else if level == Level::WARN {
                    line!(Level::WARN, $($duration).+);
                } else if level == Level::INFO {
                    line!(Level::INFO, $($duration).+);
                } else if level == Level::DEBUG {
                    line!(Level::DEBUG, $($duration).+);
                } else {
                    line!(Level::TRACE, $($duration).+);
                }
            };
        }
        match self.side {
            Side::Server { .. } => at_level!(http.server.request.duration),
            Side::Client => at_level!(http.client.request.duration),
        }
    }
}

/// Records the outcome on the span, as OpenTelemetry's HTTP and gRPC span
/// conventions ask: the status (as an integer, so exported spans carry an
/// int attribute), and `otel.status_code = "ERROR"` with `error.type` for
/// failures. A cancellation sets `error.type` only: the server did not fail,
/// its caller went away.
fn record(span: &Span, outcome: &RequestOutcome, error_type: Option<&str>) {
    match outcome {
        RequestOutcome::Http(status) => {
            span.record("http.response.status_code", i64::from(status.as_u16()));
        }
        RequestOutcome::Grpc(code) => {
            span.record("http.response.status_code", 200_i64);
            span.record("rpc.grpc.status_code", i64::from(*code));
        }
        RequestOutcome::Error(_) | RequestOutcome::Cancelled | RequestOutcome::Panicked => {}
    }
    if let Some(error_type) = error_type {
        span.record("error.type", error_type);
        if *outcome != RequestOutcome::Cancelled {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_follow_the_side() {
        let server = Side::Server { traceparent: false };
        let not_found = RequestOutcome::Http(StatusCode::NOT_FOUND);
        assert_eq!(not_found.error_type(server), None);
        assert_eq!(not_found.error_type(Side::Client), Some("404"));
        let teapot = RequestOutcome::Http(StatusCode::IM_A_TEAPOT);
        assert_eq!(teapot.error_type(Side::Client), Some("418"));
        let unavailable = RequestOutcome::Http(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.error_type(server), Some("503"));
        assert_eq!(RequestOutcome::Grpc(5).error_type(server), None);
        assert_eq!(
            RequestOutcome::Grpc(5).error_type(Side::Client),
            Some("NOT_FOUND")
        );
        assert_eq!(
            RequestOutcome::Grpc(13).error_type(server),
            Some("INTERNAL")
        );
        assert_eq!(RequestOutcome::Grpc(0).error_type(Side::Client), None);
    }
}
