//! tower middleware for HTTP services (feature `tower`): continue the
//! caller's trace on the way in, pass ours on on the way out.
//!
//! * [`HttpServerLayer`] extracts the incoming W3C context (`traceparent`,
//!   `tracestate`, `baggage`), opens the request span as its child, keeps the
//!   span entered on every poll of the response future, records the status,
//!   and can return the request span's `traceparent` on the response. A
//!   [trust switch](TrustIncoming) makes untrusted callers start a new trace
//!   that only *links* theirs.
//! * [`HttpClientLayer`] opens a client span for each outgoing request and
//!   injects its context into the request headers.
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

mod client;
mod make_span;
mod propagation;
mod response;
mod server;
mod trust;

pub use client::{HttpClientLayer, HttpClientService};
pub use make_span::{DefaultClientSpan, DefaultServerSpan, MakeRequestSpan};
pub use response::HttpResponseFuture;
pub use server::{HttpServerLayer, HttpServerService};
pub use trust::TrustIncoming;
