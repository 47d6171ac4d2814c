fn main(){}

#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "otlp")]
pub use otlp::{
    build_tracer_provider, shutdown_with_timeout, ConfigWarning, ExportConfig, ExportMode,
    OtlpError, OtlpProtocol, SamplerConfig,
};
