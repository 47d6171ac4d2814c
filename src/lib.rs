//! Every log line of a Rust service, carrying the `trace_id` and `span_id` of
//! the work it belongs to.
//!
//! * [`CorrelationLayer`] — a `tracing-subscriber` layer that gives spans a
//!   W3C trace context (minted stand-alone, or taken from the OpenTelemetry
//!   SDK) and keeps `opentelemetry::Context::current()` in step with the
//!   entered span across `.await` points.
//! * [`JsonFormat`] — one JSON object per line with `trace_id`, `span_id` and
//!   `trace_flags` at the top level; [`PrettyFormat`] for humans.
//! * [`init_json_logging`] — all of it in one call; [`builder`] for every
//!   choice.
//! * [`context`] — keeping the trace across threads, tasks, rayon jobs,
//!   channels and callbacks ([`CapturedContext`], [`bind`], [`new_root`]).
//!
//! ```no_run
//! let _guard = tracing_correlation::init_json_logging().expect("first and only init");
//! let _span = tracing::info_span!("request", method = "GET").entered();
//! tracing::info!(status = 200, "handled");
//! // {"timestamp":"…","level":"INFO","trace_id":"…","span_id":"…","trace_flags":"03",
//! //  "target":"app","message":"handled","status":200,"span":{"name":"request","method":"GET"}}
//! ```
//!
//! # Versions
//!
//! This crate pins one compatible set of OpenTelemetry crates and re-exports
//! them: [`opentelemetry`](https://docs.rs/opentelemetry/0.33) 0.33,
//! [`opentelemetry_sdk`](https://docs.rs/opentelemetry_sdk/0.33) 0.33 and
//! [`tracing_opentelemetry`](https://docs.rs/tracing-opentelemetry/0.34) 0.34.
//! Use these re-exports rather than your own dependencies: with mismatched
//! versions, lookups between the crates find nothing and lines silently lose
//! their ids.
#![doc(test(attr(deny(warnings))))]
// docs.rs (nightly, `--cfg docsrs`): each item behind a cargo feature says
// which one. `doc_cfg` also shows the features of `#[cfg]` items without an
// explicit `doc(cfg)`, since `doc_auto_cfg` was folded into it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod context;
mod diagnostics;
mod export_health;
mod format;
mod ids;
mod init;
mod layer;
mod level_callsites;
mod log_bridge;
mod otel_layer;
#[cfg(feature = "otlp")]
mod otlp;
mod output;
mod panic_hook;
mod propagation;
#[cfg(feature = "reqwest")]
mod reqwest_ext;
#[cfg(any(feature = "tower", feature = "reqwest"))]
mod semconv;
mod sink;
pub mod testing;
#[cfg(feature = "tower")]
mod tower;

pub use context::{
    bind, new_root, CapturedContext, Carried, EnteredContext, FutureContextExt, InContext, NewRoot,
};
pub use export_health::{ExportHealth, SignalHealth};
pub use format::json::{FieldPlacement, JsonFormat, MissingIds};
pub use format::keys::TraceKeys;
pub use format::pretty::PrettyFormat;
pub use format::profile::{KeyConflict, Profile};
pub use format::time::Rfc3339Micros;
pub use ids::{Hex, TraceIds};
pub use init::{builder, init_json_logging, Builder, InitError, LoggingGuard, ShutdownReport};
pub use layer::CorrelationLayer;
pub use log_bridge::{CorrelatedLogger, LogBridge};
pub use otel_layer::SpanDetails;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use otlp::{
    build_tracer_provider, shutdown_with_timeout, ConfigWarning, ExportConfig, ExportMode,
    OtlpCompression, OtlpError, OtlpLogs, OtlpProtocol, SamplerConfig,
};
pub use output::filter::{FilterError, FilterHandle, SPANS_ENV};
pub use output::{
    BufferConfig, BufferStats, Output, OutputFormat, SpanLines, VerbosityConfig, VerbosityStats,
    DEFAULT_CAPACITY, DEFAULT_MAX_RAISED_PER_MINUTE, DEFAULT_PER_TRACE_BYTES, DEFAULT_TOTAL_BYTES,
};
pub use propagation::{
    context_from_env, context_from_env_with, extract_context, extract_context_with,
    format_traceparent, inject_context, inject_context_with, inject_current_context,
    inject_into_command, inject_into_command_with, parse_traceparent, parse_tracestate,
    propagator_from_env, propagator_from_env_with, Carrier, TextMapCarrier, TraceparentError,
    TracestateError, W3cBaggagePropagator, W3cPropagator, W3cTraceContextPropagator, W3cTracestate,
};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use reqwest_ext::RequestBuilderExt;
pub use sink::{OutputReport, Target, WriteMode};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tower::{
    DefaultClientSpan, DefaultServerSpan, HttpClientLayer, HttpClientService, HttpResponseFuture,
    HttpServerLayer, HttpServerService, MakeRequestSpan, RequestOutcome, ResponseBody,
    TrustIncoming,
};

pub use opentelemetry;
pub use opentelemetry_sdk;
/// Rotating files for [`Output::file`], from `tracing-appender`.
pub use tracing_appender::rolling;
pub use tracing_opentelemetry;

/// What the crate's macros expand to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
}
