use std::time::Duration;

use super::config::OtlpProtocol;

/// Why the OTLP pipeline could not be built or shut down cleanly.
///
/// ```
/// use tracing_correlation::{build_tracer_provider, ExportConfig, OtlpError};
///
/// let config = ExportConfig::from_lookup(|_| None); // nothing asks for export
/// let result = build_tracer_provider(&config);
/// assert!(matches!(result, Err(OtlpError::ExportNotRequested)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The configuration is in stand-alone mode.
    #[error(
        "OTLP export was not requested: set OTEL_EXPORTER_OTLP_ENDPOINT or \
         OTEL_TRACES_EXPORTER=otlp (and unset OTEL_SDK_DISABLED), or call \
         `ExportConfig::with_mode(ExportMode::Otlp)`"
    )]
    ExportNotRequested,

    /// The thread that drives the exporter's network I/O could not be started.
    #[error("could not start the OTLP export runtime thread (out of threads or memory?): {0}")]
    Runtime(#[source] std::io::Error),

    /// `opentelemetry-otlp` rejected the configuration.
    #[error(
        "could not build the OTLP {protocol} exporter for {endpoint:?}: {source}; check \
         OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS and _COMPRESSION"
    )]
    Exporter {
        /// The transport that was being built.
        protocol: OtlpProtocol,
        /// The URL that was being used.
        endpoint: String,
        /// The exporter's own error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    /// Shutdown did not finish in time, typically because the collector is
    /// unreachable or slow; spans not yet delivered are lost.
    #[error(
        "OTLP shutdown did not finish within {timeout:?}: the collector is unreachable or \
         slow; check that it runs at the configured endpoint, or allow a longer timeout"
    )]
    ShutdownTimedOut {
        /// The bound that was exceeded.
        timeout: Duration,
    },

    /// The last export before shutdown failed, typically because the collector
    /// is unreachable or refused the data; those spans are lost.
    #[error(
        "the final OTLP export failed ({0}); check that the collector runs at the \
         configured endpoint and accepts this protocol"
    )]
    ExportFailed(String),

    /// The provider had already been shut down.
    #[error("the tracer provider was already shut down; shut it down only once")]
    AlreadyShutDown,

    /// The helper thread that bounds shutdown could not be started.
    #[error("could not start the OTLP shutdown thread (out of threads or memory?): {0}")]
    ShutdownThread(#[source] std::io::Error),
}
