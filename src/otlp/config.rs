//! Resolution of the standard `OTEL_*` variables into an [`ExportConfig`].

use std::fmt;
use std::time::Duration;

const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const LOGS_EXPORTER: &str = "OTEL_LOGS_EXPORTER";
const LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
const LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
const LOGS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION";
const HTTP_LOGS_PATH: &str = "/v1/logs";
const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318";
const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
const HTTP_TRACES_PATH: &str = "/v1/traces";
const FALLBACK_SERVICE_NAME: &str = "unknown_service";

/// Whether spans leave the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportMode {
    /// No exporter: the ids in the logs are minted locally and nothing is sent.
    Standalone,
    /// Spans are exported over OTLP and the ids in the logs are the exported ones.
    Otlp,
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`grpc`), default port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), default port 4318.
    #[default]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The value the `OTEL_EXPORTER_OTLP_PROTOCOL` variable uses for this protocol.
    ///
    /// ```
    /// use tracing_correlation::OtlpProtocol;
    /// assert_eq!(OtlpProtocol::HttpProtobuf.as_str(), "http/protobuf");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How export requests are compressed
/// (`OTEL_EXPORTER_OTLP_(TRACES_|LOGS_)COMPRESSION`).
///
/// ```
/// use tracing_correlation::{ExportConfig, OtlpCompression};
///
/// let config = ExportConfig::from_lookup(|name| {
///     (name == "OTEL_EXPORTER_OTLP_COMPRESSION").then(|| "gzip".to_owned())
/// });
/// assert_eq!(config.compression(), OtlpCompression::Gzip);
/// assert_eq!(OtlpCompression::Gzip.as_str(), "gzip");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// `none` (the default): bodies are sent as they are.
    #[default]
    None,
    /// `gzip`: HTTP bodies with `Content-Encoding: gzip`, gRPC messages
    /// with `grpc-encoding: gzip`.
    Gzip,
}

impl OtlpCompression {
    /// The variable's value for this choice.
    ///
    /// ```
    /// assert_eq!(tracing_correlation::OtlpCompression::None.as_str(), "none");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }

    pub(crate) fn to_otlp(self) -> Option<opentelemetry_otlp::Compression> {
        match self {
            Self::None => None,
            Self::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        }
    }
}

/// The signal's variable, else the generic one: `gzip` or `none`; any
/// other value is a warning, and `none`.
pub(crate) fn resolve_compression(
    signal_variable: &'static str,
    get: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<ConfigWarning>,
) -> OtlpCompression {
    for variable in [signal_variable, COMPRESSION] {
        let Some(value) = get(variable) else {
            continue;
        };
        if value.eq_ignore_ascii_case("gzip") {
            return OtlpCompression::Gzip;
        }
        if value.eq_ignore_ascii_case("none") {
            return OtlpCompression::None;
        }
        warnings.push(ConfigWarning::new(
            variable,
            &value,
            "expected `gzip` or `none` (zstd is not built in); sending uncompressed",
        ));
        return OtlpCompression::None;
    }
    OtlpCompression::None
}

/// The sampler named by `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[non_exhaustive]
pub enum SamplerConfig {
    /// `always_on`: every span is sampled.
    AlwaysOn,
    /// `always_off`: no span is sampled (ids still exist, flags are `00`).
    AlwaysOff,
    /// `traceidratio`: this fraction of trace ids is sampled, regardless of the parent.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default): follow the parent, sample roots.
    #[default]
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the parent, never sample roots.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the parent, sample this fraction of roots.
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    /// The SDK sampler this configuration stands for.
    ///
    /// ```
    /// use tracing_correlation::SamplerConfig;
    /// let sampler = SamplerConfig::TraceIdRatio(0.25).to_sampler();
    /// assert!(format!("{sampler:?}").contains("0.25"));
    /// ```
    #[must_use]
    pub fn to_sampler(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(ratio) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
        }
    }
}

/// An `OTEL_*` value that was ignored, and what was used instead.
///
/// Collected by [`ExportConfig::from_lookup`]; print them once with
/// [`ExportConfig::report_warnings`] or handle them yourself with
/// [`ExportConfig::take_warnings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    variable: &'static str,
    value: String,
    problem: String,
}

impl ConfigWarning {
    fn new(variable: &'static str, value: &str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            value: value.to_owned(),
            problem: problem.into(),
        }
    }

    /// The variable that held the ignored value, e.g. `"OTEL_TRACES_SAMPLER"`.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_TRACES_SAMPLER").then(|| "sometimes".to_owned())
    /// });
    /// assert_eq!(config.warnings()[0].variable(), "OTEL_TRACES_SAMPLER");
    /// ```
    #[must_use]
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// The ignored value, as it was found.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_SDK_DISABLED").then(|| "yes".to_owned())
    /// });
    /// assert_eq!(config.warnings()[0].value(), "yes");
    /// ```
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with the value and what is used instead.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/json".to_owned())
    /// });
    /// assert!(config.warnings()[0].problem().contains("not supported"));
    /// ```
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignoring {}={:?}: {}",
            self.variable, self.value, self.problem
        )
    }
}

/// Where and how OTLP log records go; part of [`ExportConfig`].
#[derive(Clone, Debug)]
struct LogsConfig {
    on: bool,
    protocol: OtlpProtocol,
    explicit_endpoint: Option<String>,
    logs_endpoint: Option<String>,
    compression: OtlpCompression,
}

/// How spans are exported, resolved from the standard `OTEL_*` variables and
/// then adjusted with builder methods (which win over the environment).
///
/// Resolution never fails: an invalid value is recorded as a [`ConfigWarning`]
/// and the default is used.
///
/// | Variable | Effect |
/// |---|---|
/// | `OTEL_SDK_DISABLED=true` | stand-alone, whatever else is set |
/// | `OTEL_TRACES_EXPORTER` | `otlp` → export; `none` → stand-alone; other names are ignored with a warning |
/// | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | export; URL used as-is |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` | export; base URL (`/v1/traces` appended for HTTP) |
/// | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc` or `http/protobuf` (default); `http/json` is not supported |
/// | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampler, default `parentbased_always_on`; a bad ratio means 1.0 |
/// | `OTEL_SERVICE_NAME` | `service.name` (default: the executable's file stem) |
/// | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,…` with percent-encoded values; one bad entry discards all |
/// | `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, `OTEL_EXPORTER_OTLP_COMPRESSION` | `gzip` or `none` (default); any other value is a warning and means `none` |
/// | `OTEL_LOGS_EXPORTER` | `otlp` → events are also exported as log records; `none` or unset → not |
/// | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, `…_LOGS_PROTOCOL`, `…_LOGS_COMPRESSION` | as for spans, falling back to the generic variables (`/v1/logs` appended for HTTP) |
///
/// Without any of the export variables the mode is [`ExportMode::Standalone`].
/// Headers, timeouts, TLS and the batch processor's `OTEL_BSP_*`
/// settings are read from the process environment by `opentelemetry-otlp` and
/// `opentelemetry_sdk` themselves when the provider is built.
///
/// ```
/// use tracing_correlation::{ExportConfig, ExportMode, OtlpProtocol};
///
/// let env = [
///     ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
///     ("OTEL_SERVICE_NAME", "checkout"),
/// ];
/// let config = ExportConfig::from_lookup(|name| {
///     env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
/// });
/// assert_eq!(config.mode(), ExportMode::Otlp);
/// assert_eq!(config.protocol(), OtlpProtocol::HttpProtobuf);
/// assert_eq!(config.endpoint(), "http://collector:4318/v1/traces");
/// assert_eq!(config.service_name(), "checkout");
///
/// // Builder methods override the environment.
/// let config = config.with_protocol(OtlpProtocol::Grpc).with_service_name("billing");
/// assert_eq!(config.endpoint(), "http://collector:4318");
/// assert_eq!(config.service_name(), "billing");
/// ```
#[derive(Clone, Debug)]
pub struct ExportConfig {
    mode: ExportMode,
    protocol: OtlpProtocol,
    explicit_endpoint: Option<String>,
    traces_endpoint: Option<String>,
    generic_endpoint: Option<String>,
    export_timeout: Option<Duration>,
    compression: OtlpCompression,
    logs: LogsConfig,
    sampler: SamplerConfig,
    service_name: Option<String>,
    default_service_name: String,
    resource_attributes: Vec<(String, String)>,
    warnings: Vec<ConfigWarning>,
}

impl ExportConfig {
    /// Resolves the configuration from the process environment.
    ///
    /// A variable whose value is not valid Unicode counts as unset.
    ///
    /// ```
    /// let config = tracing_correlation::ExportConfig::from_env();
    /// println!("exporting: {:?}", config.mode());
    /// ```
    #[must_use]
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves the configuration from `lookup`, which is asked for variables by
    /// name; use it to configure from something other than the process
    /// environment, and in tests.
    ///
    /// Values are trimmed and an empty value counts as unset. Keywords
    /// (`true`, `otlp`, `none`, `grpc`, sampler names…) are case-insensitive.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, ExportMode};
    /// let config = ExportConfig::from_lookup(|name| match name {
    ///     "OTEL_TRACES_EXPORTER" => Some("OTLP".to_owned()),
    ///     "OTEL_SDK_DISABLED" => Some("".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(config.mode(), ExportMode::Otlp);
    /// assert_eq!(config.endpoint(), "http://localhost:4318/v1/traces");
    /// ```
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut warnings = Vec::new();

        let traces_endpoint = get(TRACES_ENDPOINT);
        let generic_endpoint = get(ENDPOINT);
        let mode = resolve_mode(
            get(SDK_DISABLED).as_deref(),
            get(TRACES_EXPORTER).as_deref(),
            traces_endpoint.is_some() || generic_endpoint.is_some(),
            &mut warnings,
        );
        let protocol = parse_protocol(TRACES_PROTOCOL, get(TRACES_PROTOCOL), &mut warnings)
            .or_else(|| parse_protocol(PROTOCOL, get(PROTOCOL), &mut warnings))
            .unwrap_or_default();
        let compression = resolve_compression(TRACES_COMPRESSION, &get, &mut warnings);
        let logs = LogsConfig {
            on: resolve_logs(
                get(SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")),
                get(LOGS_EXPORTER).as_deref(),
                &mut warnings,
            ),
            protocol: parse_protocol(LOGS_PROTOCOL, get(LOGS_PROTOCOL), &mut warnings)
                .or_else(|| parse_protocol(PROTOCOL, get(PROTOCOL), &mut Vec::new()))
                .unwrap_or_default(),
            explicit_endpoint: None,
            logs_endpoint: get(LOGS_ENDPOINT),
            compression: {
                // The generic variable's problem is already reported above.
                let mut seen = Vec::new();
                let compression = resolve_compression(LOGS_COMPRESSION, &get, &mut seen);
                warnings.extend(seen.into_iter().filter(|w| w.variable == LOGS_COMPRESSION));
                compression
            },
        };
        let sampler = resolve_sampler(
            get(TRACES_SAMPLER).as_deref(),
            get(TRACES_SAMPLER_ARG).as_deref(),
            &mut warnings,
        );
        let resource_attributes = get(RESOURCE_ATTRIBUTES)
            .map(|value| match parse_resource_attributes(&value) {
                Ok(attributes) => attributes,
                Err(problem) => {
                    warnings.push(ConfigWarning::new(RESOURCE_ATTRIBUTES, &value, problem));
                    Vec::new()
                }
            })
            .unwrap_or_default();

        Self {
            mode,
            protocol,
            explicit_endpoint: None,
            traces_endpoint,
            generic_endpoint,
            export_timeout: None,
            compression,
            logs,
            sampler,
            service_name: get(SERVICE_NAME),
            default_service_name: executable_service_name(),
            resource_attributes,
            warnings,
        }
    }

    /// Overrides the export decision.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, ExportMode};
    /// let config = ExportConfig::from_lookup(|_| None).with_mode(ExportMode::Otlp);
    /// assert_eq!(config.mode(), ExportMode::Otlp);
    /// ```
    #[must_use]
    pub fn with_mode(mut self, mode: ExportMode) -> Self {
        self.mode = mode;
        self
    }

    /// Overrides the transport. An endpoint taken from
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` follows the protocol (`/v1/traces` is
    /// appended for HTTP only).
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpProtocol};
    /// let config = ExportConfig::from_lookup(|_| None).with_protocol(OtlpProtocol::Grpc);
    /// assert_eq!(config.endpoint(), "http://localhost:4317");
    /// ```
    #[must_use]
    pub fn with_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self.logs.protocol = protocol;
        self
    }

    /// Overrides the collector URL; it is used as-is, like
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (give the full `…/v1/traces` URL
    /// for HTTP). This does not change the [mode](Self::with_mode).
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None).with_endpoint("http://otel:4318/v1/traces");
    /// assert_eq!(config.endpoint(), "http://otel:4318/v1/traces");
    /// ```
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.explicit_endpoint = Some(endpoint.into());
        self
    }

    /// Overrides the time one export request (with its retries) may take. Without
    /// it the exporter reads `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` /
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` from the process environment (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None).with_export_timeout(Duration::from_secs(2));
    /// assert_eq!(config.export_timeout(), Some(Duration::from_secs(2)));
    /// ```
    #[must_use]
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Overrides the compression chosen by
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` / `OTEL_EXPORTER_OTLP_COMPRESSION`.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpCompression};
    /// let config = ExportConfig::from_lookup(|_| None).with_compression(OtlpCompression::Gzip);
    /// assert_eq!(config.compression(), OtlpCompression::Gzip);
    /// ```
    #[must_use]
    pub fn with_compression(mut self, compression: OtlpCompression) -> Self {
        self.compression = compression;
        self
    }

    /// How span export requests are compressed: the builder value, else
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`, else none.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpCompression};
    /// let config = ExportConfig::from_lookup(|name| match name {
    ///     "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION" => Some("none".to_owned()),
    ///     "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(config.compression(), OtlpCompression::None);
    /// ```
    #[must_use]
    pub fn compression(&self) -> OtlpCompression {
        self.compression
    }

    /// Whether events are also exported as OTLP log records (off unless
    /// `OTEL_LOGS_EXPORTER=otlp`; `OTEL_SDK_DISABLED=true` turns it off).
    /// Independent of the span [mode](Self::with_mode): logs, spans or both.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None);
    /// assert!(!config.logs());
    /// assert!(config.with_logs(true).logs());
    /// ```
    #[must_use]
    pub fn with_logs(mut self, on: bool) -> Self {
        self.logs.on = on;
        self
    }

    /// Overrides the URL log records are sent to; used as-is, like
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None).with_logs_endpoint("http://otel:4318/v1/logs");
    /// assert_eq!(config.logs_endpoint(), "http://otel:4318/v1/logs");
    /// ```
    #[must_use]
    pub fn with_logs_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.logs.explicit_endpoint = Some(endpoint.into());
        self
    }

    /// Whether events are exported as OTLP log records.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_LOGS_EXPORTER").then(|| "otlp".to_owned())
    /// });
    /// assert!(config.logs());
    /// ```
    #[must_use]
    pub fn logs(&self) -> bool {
        self.logs.on
    }

    /// The transport of log records: `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`,
    /// else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`;
    /// [`with_protocol`](Self::with_protocol) sets both signals'.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpProtocol};
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL").then(|| "grpc".to_owned())
    /// });
    /// assert_eq!(config.logs_protocol(), OtlpProtocol::Grpc);
    /// assert_eq!(config.protocol(), OtlpProtocol::HttpProtobuf);
    /// ```
    #[must_use]
    pub fn logs_protocol(&self) -> OtlpProtocol {
        self.logs.protocol
    }

    /// The URL log records are sent to: the [builder value](Self::with_logs_endpoint),
    /// else `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` as-is, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/logs` appended for HTTP), else
    /// the protocol's default on localhost.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://otel:4318".to_owned())
    /// });
    /// assert_eq!(config.logs_endpoint(), "http://otel:4318/v1/logs");
    /// ```
    #[must_use]
    pub fn logs_endpoint(&self) -> String {
        if let Some(endpoint) = self
            .logs
            .explicit_endpoint
            .as_ref()
            .or(self.logs.logs_endpoint.as_ref())
        {
            return endpoint.clone();
        }
        let base = self.generic_endpoint.as_deref();
        match self.logs.protocol {
            OtlpProtocol::Grpc => base.unwrap_or(DEFAULT_GRPC_ENDPOINT).to_owned(),
            OtlpProtocol::HttpProtobuf => {
                let base = base.unwrap_or(DEFAULT_HTTP_ENDPOINT);
                format!("{}{HTTP_LOGS_PATH}", base.trim_end_matches('/'))
            }
        }
    }

    /// How log export requests are compressed:
    /// `OTEL_EXPORTER_OTLP_LOGS_COMPRESSION`, else
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`, else none.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpCompression};
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION").then(|| "gzip".to_owned())
    /// });
    /// assert_eq!(config.logs_compression(), OtlpCompression::Gzip);
    /// assert_eq!(config.compression(), OtlpCompression::None);
    /// ```
    #[must_use]
    pub fn logs_compression(&self) -> OtlpCompression {
        self.logs.compression
    }

    /// Overrides the sampler.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, SamplerConfig};
    /// let config = ExportConfig::from_lookup(|_| None).with_sampler(SamplerConfig::AlwaysOff);
    /// assert_eq!(config.sampler(), SamplerConfig::AlwaysOff);
    /// ```
    #[must_use]
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Overrides the `service.name` resource attribute.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None).with_service_name("checkout");
    /// assert_eq!(config.service_name(), "checkout");
    /// ```
    #[must_use]
    pub fn with_service_name(mut self, service_name: impl Into<String>) -> Self {
        self.service_name = Some(service_name.into());
        self
    }

    /// Adds a resource attribute, replacing one with the same key (including one
    /// from `OTEL_RESOURCE_ATTRIBUTES`).
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|_| None)
    ///     .with_resource_attribute("deployment.environment.name", "staging");
    /// assert_eq!(
    ///     config.resource_attributes(),
    ///     [("deployment.environment.name".to_owned(), "staging".to_owned())]
    /// );
    /// ```
    #[must_use]
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let (key, value) = (key.into(), value.into());
        self.resource_attributes.retain(|(k, _)| *k != key);
        self.resource_attributes.push((key, value));
        self
    }

    /// Whether spans are exported.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, ExportMode};
    /// assert_eq!(ExportConfig::from_lookup(|_| None).mode(), ExportMode::Standalone);
    /// ```
    #[must_use]
    pub fn mode(&self) -> ExportMode {
        self.mode
    }

    /// The transport.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, OtlpProtocol};
    /// assert_eq!(ExportConfig::from_lookup(|_| None).protocol(), OtlpProtocol::HttpProtobuf);
    /// ```
    #[must_use]
    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// The URL spans are sent to: the [builder value](Self::with_endpoint), else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as-is, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended for HTTP), else
    /// the protocol's default on localhost.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://otel:4318/".to_owned())
    /// });
    /// assert_eq!(config.endpoint(), "http://otel:4318/v1/traces");
    /// ```
    #[must_use]
    pub fn endpoint(&self) -> String {
        if let Some(endpoint) = self
            .explicit_endpoint
            .as_ref()
            .or(self.traces_endpoint.as_ref())
        {
            return endpoint.clone();
        }
        let base = self.generic_endpoint.as_deref();
        match self.protocol {
            OtlpProtocol::Grpc => base.unwrap_or(DEFAULT_GRPC_ENDPOINT).to_owned(),
            OtlpProtocol::HttpProtobuf => {
                let base = base.unwrap_or(DEFAULT_HTTP_ENDPOINT);
                format!("{}{HTTP_TRACES_PATH}", base.trim_end_matches('/'))
            }
        }
    }

    /// The export timeout set with [`with_export_timeout`](Self::with_export_timeout),
    /// if any.
    ///
    /// ```
    /// assert_eq!(tracing_correlation::ExportConfig::from_lookup(|_| None).export_timeout(), None);
    /// ```
    #[must_use]
    pub fn export_timeout(&self) -> Option<Duration> {
        self.export_timeout
    }

    /// The sampler.
    ///
    /// ```
    /// use tracing_correlation::{ExportConfig, SamplerConfig};
    /// let config = ExportConfig::from_lookup(|_| None);
    /// assert_eq!(config.sampler(), SamplerConfig::ParentBasedAlwaysOn);
    /// ```
    #[must_use]
    pub fn sampler(&self) -> SamplerConfig {
        self.sampler
    }

    /// The `service.name`: the builder value, else `OTEL_SERVICE_NAME`, else
    /// `service.name` from the resource attributes, else the executable's file
    /// stem, else `unknown_service`.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_RESOURCE_ATTRIBUTES").then(|| "service.name=cart".to_owned())
    /// });
    /// assert_eq!(config.service_name(), "cart");
    /// ```
    #[must_use]
    pub fn service_name(&self) -> &str {
        self.service_name
            .as_deref()
            .or_else(|| {
                self.resource_attributes
                    .iter()
                    .find(|(key, _)| key == "service.name")
                    .map(|(_, value)| value.as_str())
            })
            .unwrap_or(&self.default_service_name)
    }

    /// The resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded)
    /// and the builder, in order. `service.name` and the `telemetry.sdk.*`
    /// attributes are added when the provider is built.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_RESOURCE_ATTRIBUTES").then(|| "team=a%2Cb".to_owned())
    /// });
    /// assert_eq!(config.resource_attributes(), [("team".to_owned(), "a,b".to_owned())]);
    /// ```
    #[must_use]
    pub fn resource_attributes(&self) -> &[(String, String)] {
        &self.resource_attributes
    }

    /// The values that were ignored while resolving, in the order they were read.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// assert!(ExportConfig::from_lookup(|_| None).warnings().is_empty());
    /// ```
    #[must_use]
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Removes and returns the warnings, so that they are reported only once.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let mut config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_TRACES_SAMPLER_ARG").then(|| "x".to_owned())
    /// })
    /// .with_sampler(tracing_correlation::SamplerConfig::AlwaysOn);
    /// assert!(config.take_warnings().is_empty()); // the arg is ignored without a ratio sampler
    /// assert!(config.warnings().is_empty());
    /// ```
    pub fn take_warnings(&mut self) -> Vec<ConfigWarning> {
        std::mem::take(&mut self.warnings)
    }

    /// Prints each warning on stderr, one line each, and forgets them so that a
    /// second call prints nothing.
    ///
    /// ```
    /// use tracing_correlation::ExportConfig;
    /// let mut config = ExportConfig::from_lookup(|name| {
    ///     (name == "OTEL_TRACES_EXPORTER").then(|| "zipkin".to_owned())
    /// });
    /// config.report_warnings(); // prints: tracing-correlation: ignoring OTEL_TRACES_EXPORTER="zipkin": …
    /// assert!(config.warnings().is_empty());
    /// ```
    pub fn report_warnings(&mut self) {
        for warning in self.take_warnings() {
            crate::diagnostics::report!("{warning}");
        }
    }
}

fn resolve_mode(
    sdk_disabled: Option<&str>,
    traces_exporter: Option<&str>,
    endpoint_set: bool,
    warnings: &mut Vec<ConfigWarning>,
) -> ExportMode {
    let disabled = match sdk_disabled {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("true") => true,
        Some(value) if value.eq_ignore_ascii_case("false") => false,
        Some(value) => {
            warnings.push(ConfigWarning::new(
                SDK_DISABLED,
                value,
                "expected `true` or `false`; the SDK stays enabled",
            ));
            false
        }
    };

    let (wants_otlp, wants_none) = parse_exporters(TRACES_EXPORTER, traces_exporter, warnings);

    if disabled || wants_none {
        ExportMode::Standalone
    } else if wants_otlp || endpoint_set {
        ExportMode::Otlp
    } else {
        ExportMode::Standalone
    }
}

/// `OTEL_LOGS_EXPORTER`: a list of which only `otlp` and `none` are
/// honoured; unset means off (logs already reach stdout; see the README).
fn resolve_logs(
    sdk_disabled: bool,
    logs_exporter: Option<&str>,
    warnings: &mut Vec<ConfigWarning>,
) -> bool {
    let (wants_otlp, wants_none) = parse_exporters(LOGS_EXPORTER, logs_exporter, warnings);
    wants_otlp && !wants_none && !sdk_disabled
}

/// `OTEL_*_EXPORTER`: per the spec a comma-separated list, of which `otlp`
/// and `none` are honoured; anything else is reported. Returns whether each
/// of the two was named.
fn parse_exporters(
    variable: &'static str,
    value: Option<&str>,
    warnings: &mut Vec<ConfigWarning>,
) -> (bool, bool) {
    let (mut otlp, mut none) = (false, false);
    let Some(value) = value else {
        return (otlp, none);
    };
    for exporter in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if exporter.eq_ignore_ascii_case("otlp") {
            otlp = true;
        } else if exporter.eq_ignore_ascii_case("none") {
            none = true;
        } else {
            warnings.push(ConfigWarning::new(
                variable,
                value,
                format!("exporter `{exporter}` is not supported (only `otlp` and `none` are)"),
            ));
        }
    }
    (otlp, none)
}

fn parse_protocol(
    variable: &'static str,
    value: Option<String>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<OtlpProtocol> {
    let value = value?;
    if value.eq_ignore_ascii_case("grpc") {
        Some(OtlpProtocol::Grpc)
    } else if value.eq_ignore_ascii_case("http/protobuf") {
        Some(OtlpProtocol::HttpProtobuf)
    } else {
        let problem = if value.eq_ignore_ascii_case("http/json") {
            "`http/json` is not supported; use `http/protobuf` or `grpc`"
        } else {
            "expected `grpc` or `http/protobuf`"
        };
        warnings.push(ConfigWarning::new(variable, &value, problem));
        None
    }
}

fn resolve_sampler(
    name: Option<&str>,
    arg: Option<&str>,
    warnings: &mut Vec<ConfigWarning>,
) -> SamplerConfig {
    let Some(name) = name else {
        return SamplerConfig::default();
    };
    let mut ratio = || match arg {
        None => 1.0,
        Some(arg) => match arg.parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => ratio,
            _ => {
                warnings.push(ConfigWarning::new(
                    TRACES_SAMPLER_ARG,
                    arg,
                    "expected a number from 0 to 1; using 1.0",
                ));
                1.0
            }
        },
    };
    match name.to_ascii_lowercase().as_str() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(ratio()),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio()),
        _ => {
            warnings.push(ConfigWarning::new(
                TRACES_SAMPLER,
                name,
                "unknown or unsupported sampler; using `parentbased_always_on`",
            ));
            SamplerConfig::default()
        }
    }
}

/// Parses `key1=value1,key2=value2` with percent-encoded values. Per the
/// specification, any error discards the whole value.
fn parse_resource_attributes(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, raw_value)) = entry.split_once('=') else {
            return Err(format!(
                "entry `{entry}` is not `key=value`; all resource attributes from this variable are ignored"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!(
                "entry `{entry}` has an empty key; all resource attributes from this variable are ignored"
            ));
        }
        let decoded = percent_decode(raw_value.trim()).ok_or_else(|| {
            format!(
                "the value of `{key}` is not valid percent-encoded UTF-8; all resource attributes from this variable are ignored"
            )
        })?;
        attributes.retain(|(k, _)| k != key);
        attributes.push((key.to_owned(), decoded));
    }
    Ok(attributes)
}

fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Not `u8::from_str_radix`, which accepts a sign (`%+1`).
            let high = hex_value(*bytes.get(i + 1)?)?;
            let low = hex_value(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn executable_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .filter(|stem| !stem.is_empty())
        .unwrap_or_else(|| FALLBACK_SERVICE_NAME.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_lists_name_their_own_variable_in_warnings() {
        let mut warnings = Vec::new();
        assert!(resolve_logs(false, Some("console, otlp"), &mut warnings));
        assert!(!resolve_logs(false, Some("otlp,none"), &mut warnings));
        assert!(!resolve_logs(true, Some("otlp"), &mut warnings));
        assert!(!resolve_logs(false, None, &mut warnings));
        let named: Vec<_> = warnings.iter().map(ConfigWarning::variable).collect();
        assert_eq!(named, [LOGS_EXPORTER]);
        assert_eq!(
            parse_exporters(TRACES_EXPORTER, Some(" otlp , ,zipkin"), &mut warnings),
            (true, false)
        );
        let named: Vec<_> = warnings.iter().map(ConfigWarning::variable).collect();
        assert_eq!(named, [LOGS_EXPORTER, TRACES_EXPORTER]);
    }

    #[test]
    fn percent_decoding_accepts_valid_and_rejects_broken_escapes() {
        assert_eq!(percent_decode("a%20b%2C%C3%A9").as_deref(), Some("a b,é"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn resource_attributes_keep_the_last_duplicate_and_skip_empty_entries() {
        let parsed = parse_resource_attributes(" a = 1 ,, b=x%3Dy , a=2,").unwrap();
        assert_eq!(
            parsed,
            [("b".into(), "x=y".into()), ("a".into(), "2".into())]
        );
        assert!(parse_resource_attributes("a=1,novalue").is_err());
        assert!(parse_resource_attributes("=1").is_err());
    }
}
