//! tower middleware for HTTP services (feature `tower`): continue the
//! caller's trace on the way in, pass ours on on the way out.
//!
//! * [`HttpServerLayer`] extracts the incoming W3C context (`traceparent`,
//!   `tracestate`, `baggage`), opens the request span as its child, keeps the
//!   span entered on every poll of the response future, records the status,
//!   and can return the request span's `traceparent` on the response. A
//!   [trust switch](TrustIncoming) makes untrusted callers start a new trace
//!   that only *links* theirs.
//!   It writes one completion line per request (method, route, status,
//!   duration, `error.type`), and serves health checks untraced
//!   ([`HttpServerLayer::skip_if`]).
//! * [`HttpClientLayer`] opens a client span for each outgoing request and
//!   injects its context into the request headers.
//!
//! gRPC calls (`content-type: application/grpc*`, as tonic sends them) get
//! OpenTelemetry's RPC conventions: `rpc.system`, `rpc.service`,
//! `rpc.method`, and `rpc.grpc.status_code` from the `grpc-status` header
//! or, when the headers have none, from the trailers at the end of the
//! response body ([`ResponseBody`]).
//!
//! Both are generic over `http::Request<B>` / `http::Response<B>`, so they
//! work with axum, hyper (through `hyper-util`'s tower adapter) and any tower
//! stack. Spans follow OpenTelemetry's HTTP semantic conventions; their
//! shape is customisable with a [`MakeRequestSpan`] (a closure or your own
//! type).
//!
//! The ids come from the subscriber: a [`CorrelationLayer`](crate::CorrelationLayer)
//! (stand-alone or over `tracing-opentelemetry`) must be installed, as
//! [`init_json_logging`](crate::init_json_logging) does.

mod body;
mod client;
mod completion;
mod grpc;
mod make_span;
mod propagation;
mod response;
mod server;
mod trust;

pub use body::ResponseBody;
pub use client::{HttpClientLayer, HttpClientService};
pub use completion::RequestOutcome;
pub use make_span::{DefaultClientSpan, DefaultServerSpan, MakeRequestSpan};
pub use response::HttpResponseFuture;
pub use server::{HttpServerLayer, HttpServerService};
pub use trust::TrustIncoming;
