//! OTLP export: resolve the standard `OTEL_*` variables, build an exporting
//! `SdkTracerProvider` (and, when asked, an `SdkLoggerProvider` fed by the
//! events), and shut them down within a bound.
//!
//! # Who reads which variable
//!
//! [`ExportConfig`] reads, through its lookup function (so tests never touch the
//! process environment), everything that decides *whether* and *where* spans go:
//!
//! | Variable | Read by | Notes |
//! |---|---|---|
//! | `OTEL_SDK_DISABLED` | `ExportConfig` | `true` → stand-alone. The SDK ignores it. |
//! | `OTEL_TRACES_EXPORTER` | `ExportConfig` | `otlp` / `none`. The SDK ignores it. |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | `ExportConfig` | used as-is |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `ExportConfig` | `/v1/traces` appended for HTTP, as-is for gRPC |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` | `ExportConfig` | `grpc`, `http/protobuf` |
//! | `OTEL_TRACES_SAMPLER(_ARG)` | `ExportConfig` | the SDK would read them too; ours wins via `with_sampler` |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | `ExportConfig` | percent-decoded; the SDK's own detector (which does not decode) is not used |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` | `opentelemetry-otlp` | process environment, at build |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` | `opentelemetry-otlp` | unless `ExportConfig::with_export_timeout` |
//! | `OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION` | `ExportConfig` | `gzip` or `none`; anything else is a warning (zstd is not built in) |
//! | `OTEL_EXPORTER_OTLP_INSECURE` | `opentelemetry-otlp` | |
//! | `OTEL_LOGS_EXPORTER` | `ExportConfig` | `otlp` / `none`; unset means no log records (the SDK's default would be `otlp`) |
//! | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, `_LOGS_PROTOCOL`, `_LOGS_COMPRESSION` | `ExportConfig` | falling back to the generic variables; `/v1/logs` for HTTP |
//! | `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, `_LOGS_TIMEOUT` | `opentelemetry-otlp` | process environment, at build |
//! | `OTEL_BSP_*` | `opentelemetry_sdk` | batch processor queue, delay, batch size |
//! | `OTEL_BLRP_*` | `opentelemetry_sdk` | batch log record processor queue, delay, batch size |
//! | `OTEL_SPAN_*_COUNT_LIMIT` | `opentelemetry_sdk` | span limits |
//!
//! The endpoint is always passed to the exporter explicitly (resolved by
//! `ExportConfig` exactly as the specification and `opentelemetry-otlp` do), so
//! that a lookup-based configuration cannot be contradicted by the process
//! environment. `OTEL_PROPAGATORS` belongs to the propagation setup, not here.
//!
//! # Transport and threads
//!
//! The SDK's batch span processor runs on its own thread and polls exports with
//! a plain executor, while tonic and hyper need a tokio reactor. Rather than
//! depending on the application's runtime (absent in sync programs, possibly a
//! blocked `current_thread` runtime, or already shut down when the guard is
//! dropped), every export is spawned onto a private one-worker tokio runtime
//! owned by the exporter and shut down in the background when it is dropped.
//! HTTP uses `opentelemetry-otlp`'s `hyper-client` instead of
//! `reqwest-blocking-client`: hyper is already in the tree for tonic, while
//! reqwest would add its own runtime thread, URL and IDNA crates.
//!
//! [`shutdown_with_timeout`] runs the SDK shutdown on a helper thread and waits
//! on a channel, so the caller is released at the bound even when an export is
//! stuck retrying against an unreachable collector.

mod config;
mod error;
mod logs;
mod provider;

pub use config::{
    ConfigWarning, ExportConfig, ExportMode, OtlpCompression, OtlpProtocol, SamplerConfig,
};
pub use error::OtlpError;
pub use logs::OtlpLogs;
pub(crate) use logs::{build_logger_provider, shutdown_logger_provider, OtlpLogLayer};
pub(crate) use provider::build_counted_tracer_provider;
pub use provider::{build_tracer_provider, shutdown_with_timeout};
