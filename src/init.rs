//! One-call setup: `init_json_logging()` and the [`Builder`] behind it.

use std::fmt;
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use std::sync::Arc;

use crate::output::buffer::{BufferHook, TraceBuffers};
use crate::output::filter::{
    self, Directives, ExtraEvents, FilterError, FilterHandle, GlobalFilter, IgnoreEvents,
    LogRecordGate, SpanSet, SplitFilter, Swappable, DEFAULT_SPANS, SPANS_ENV,
};
use crate::output::layer::OutputLayer;
use crate::output::verbosity::{RaiseGate, Verbosity, VerbosityLayer};
use crate::output::{BufferConfig, BufferStats, VerbosityConfig, VerbosityStats};
use crate::output::{Output, OutputFormat, SpanLines};
use crate::sink::{DropReport, LineSink, OutputReport, WriteMode};
use crate::{CorrelationLayer, JsonFormat, PrettyFormat};

/// Sets up JSON logging with trace correlation for the whole process, with
/// every default: JSON lines to stdout, the `RUST_LOG` filter (`info` when
/// unset), ids minted stand-alone, the W3C trace-context and baggage
/// propagators installed globally, and a panic hook that logs panics with
/// their trace ids, and the [`LogBridge`](crate::LogBridge) forwarding
/// records of the `log` crate. `LOG_FORMAT=pretty` switches to the
/// human-readable format.
///
/// Keep the returned guard alive until the end of `main`: dropping it flushes
/// what is buffered.
///
/// # Errors
///
/// [`InitError::AlreadyInitialized`] when a global `tracing` subscriber is
/// already installed (for example by a second call);
/// [`InitError::LogLoggerAlreadySet`] when another `log` logger is installed.
/// Nothing is changed then.
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _guard = tracing_correlation::init_json_logging()?;
///     let _span = tracing::info_span!("startup").entered();
///     tracing::info!(port = 8080, "listening");
///     Ok(())
/// }
/// ```
pub fn init_json_logging() -> Result<LoggingGuard, InitError> {
    builder().try_init()
}

/// A [`Builder`] with every default of [`init_json_logging`].
///
/// ```no_run
/// use tracing_correlation::{builder, OutputFormat, TraceKeys, JsonFormat};
///
/// let _guard = builder()
///     .format(OutputFormat::Json)
///     .json(JsonFormat::new().with_trace_keys(TraceKeys::ecs()))
///     .filter("info,my_crate=debug")
///     .writer(std::io::stderr)
///     .init();
/// ```
pub fn builder() -> Builder {
    Builder::new()
}

/// Every choice [`init_json_logging`] makes, each one overridable.
///
/// Environment variables are read when [`Builder::build`] or
/// [`Builder::try_init`] runs, and an explicit builder call always wins over
/// them: `RUST_LOG` (which lines the first output writes), `RUST_LOG_SPANS`
/// (which spans exist), `LOG_FORMAT` (`json` or `pretty`), the `OTEL_*`
/// export variables (feature `otlp`) and `TRACEPARENT`.
///
/// The stack it builds: a registry; the OpenTelemetry layer when spans are
/// exported; the [`CorrelationLayer`] behind the span filter; one event
/// layer per [`Output`], each behind its own line filter; then the layers
/// given to [`Builder::with_layer`]. Whatever is added, `try_init` installs
/// the panic hook, the log bridge and the propagators, and the guard flushes
/// every output.
///
/// ```no_run
/// use tracing_correlation::{builder, JsonFormat, Output, OutputFormat, TraceKeys, WriteMode};
///
/// let _guard = builder()
///     .json(JsonFormat::new().with_trace_keys(TraceKeys::ecs()))
///     .filter("info,my_crate=debug")
///     .write_mode(WriteMode::Block)
///     .output(Output::stderr().format(OutputFormat::Pretty).filter("error"))
///     .init();
/// ```
#[must_use = "a Builder does nothing until `init`, `try_init` or `build` is called"]
#[allow(clippy::struct_excessive_bools)] // independent on/off switches, each with its own setter
pub struct Builder {
    first: Output,
    more: Vec<Output>,
    span_filter: Option<String>,
    layers: Vec<BoxedLayer>,
    /// A layer that sees exactly the spans that exist (the test capture's
    /// span recorder).
    span_layer: Option<BoxedLayer>,
    panic_hook: bool,
    panic_backtrace_frames: usize,
    propagators: bool,
    continue_env_trace: bool,
    tracer_provider: Option<SdkTracerProvider>,
    #[cfg(feature = "otlp")]
    export: Option<crate::ExportConfig>,
    #[cfg(feature = "otlp")]
    otlp_logs: Option<crate::OtlpLogs>,
    otel_span_events: bool,
    otel_span_details: crate::SpanDetails,
    shutdown_timeout: Duration,
    log_bridge: bool,
    verbosity: Option<VerbosityConfig>,
}

pub(crate) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("first", &self.first)
            .field("more", &self.more)
            .field("span_filter", &self.span_filter)
            .field("layers", &self.layers.len())
            .field("panic_hook", &self.panic_hook)
            .field("propagators", &self.propagators)
            .field("continue_env_trace", &self.continue_env_trace)
            .field("tracer_provider", &self.tracer_provider.is_some())
            .field("otel_span_events", &self.otel_span_events)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("log_bridge", &self.log_bridge)
            .finish_non_exhaustive()
    }
}

impl Builder {
    fn new() -> Self {
        Self {
            first: Output::stdout(),
            more: Vec::new(),
            span_filter: None,
            layers: Vec::new(),
            span_layer: None,
            panic_hook: true,
            panic_backtrace_frames: crate::panic_hook::DEFAULT_BACKTRACE_FRAMES,
            propagators: true,
            continue_env_trace: true,
            tracer_provider: None,
            #[cfg(feature = "otlp")]
            export: None,
            #[cfg(feature = "otlp")]
            otlp_logs: None,
            otel_span_events: false,
            otel_span_details: crate::SpanDetails::NONE,
            shutdown_timeout: Duration::from_secs(5),
            log_bridge: true,
            verbosity: None,
        }
    }

    /// Writes the first output to a `MakeWriter` (stderr, an in-memory buffer
    /// in tests…) instead of stdout; each line is written when it is logged
    /// ([`WriteMode::Direct`]) unless [`Builder::write_mode`] says otherwise.
    /// For a file or any `io::Write`, see [`Output`] and [`Builder::output`].
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .writer(std::io::stderr)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn writer<M>(mut self, make_writer: M) -> Self
    where
        M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        self.first = self.first.retarget(Output::make_writer(make_writer));
        self
    }

    /// How the first output writes: [`WriteMode::Block`] (the default for
    /// stdout: a background thread writes batches, logging waits when the
    /// buffer is full, nothing is lost), [`WriteMode::Drop`] (never waits;
    /// dropped lines are counted and reported) or [`WriteMode::Direct`] (each
    /// line written by the logging thread).
    ///
    /// ```
    /// use tracing_correlation::WriteMode;
    ///
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .write_mode(WriteMode::Drop)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop((dispatch, guard));
    /// ```
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.first = self.first.mode(mode);
        self
    }

    /// Replaces the first output (stdout by default) with `output`: a file,
    /// stderr, any `io::Write`. Choices already made on the builder
    /// ([`Builder::filter`], [`Builder::format`]…) carry over where `output`
    /// makes none.
    ///
    /// ```
    /// use tracing_correlation::{Output, WriteMode};
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .filter("debug")
    ///     .default_output(Output::writer(std::io::sink()).mode(WriteMode::Drop))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn default_output(mut self, output: Output) -> Self {
        self.first = self.first.replaced_by(output);
        self
    }

    /// Adds another output (a file, stderr, any writer) with its own format,
    /// filter and write mode. The first output (stdout unless
    /// [`Builder::writer`] says otherwise) is always there.
    ///
    /// ```
    /// use tracing_correlation::{Output, OutputFormat};
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .output(Output::stderr().format(OutputFormat::Pretty).filter("warn"))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn output(mut self, output: Output) -> Self {
        self.more.push(output);
        self
    }

    /// Adds any `tracing_subscriber` layer (Sentry, tokio-console, metrics…),
    /// with or without a per-layer filter of its own. It runs after the
    /// correlation layer, so inside it `TraceIds::current()` and
    /// `opentelemetry::Context::current()` see the ids the lines carry.
    /// A layer without a per-layer filter sees every span and event (and
    /// makes every callsite enabled): give it a filter to keep disabled
    /// events free.
    ///
    /// ```
    /// use tracing_subscriber::{filter::LevelFilter, Layer};
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .with_layer(tracing_subscriber::fmt::layer().with_filter(LevelFilter::ERROR))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn with_layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Registry> + Send + Sync + 'static,
    {
        self.layers.push(Box::new(layer));
        self
    }

    /// Chooses JSON or human-readable lines for the first output. Unset,
    /// `LOG_FORMAT` (`json` or `pretty`) decides, and JSON is the default.
    ///
    /// ```
    /// use tracing_correlation::OutputFormat;
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .format(OutputFormat::Pretty)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.first = self.first.format(format);
        self
    }

    /// Sets the first output's JSON options (keys, field placement, span
    /// list…).
    ///
    /// ```
    /// use tracing_correlation::{JsonFormat, TraceKeys};
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .json(JsonFormat::new().with_trace_keys(TraceKeys::datadog()))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn json(mut self, json: JsonFormat) -> Self {
        self.first = self.first.json(json);
        self
    }

    /// Which lines the first output writes (`RUST_LOG` syntax), instead of
    /// `RUST_LOG`. It decides lines only: spans exist as
    /// [`Builder::span_filter`] says, so at `warn` a warning inside an
    /// `info` span still carries that span's ids.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .filter("warn,my_crate=debug")
    ///     .build()
    ///     .expect("valid directives");
    /// # drop(dispatch);
    /// ```
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.first = self.first.filter(directives);
        self
    }

    /// Keeps each request's lines that the first output's filter does not
    /// write (DEBUG lines, with `BufferConfig::new(Level::DEBUG)`) in a
    /// bounded per-trace buffer, and writes them only if the request fails:
    /// see [`BufferConfig`] (and [`Output::buffer_until_error`] for other
    /// outputs).
    ///
    /// ```
    /// use tracing::Level;
    /// use tracing_correlation::BufferConfig;
    ///
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .filter("info")
    ///     .buffer_until_error(BufferConfig::new(Level::DEBUG))
    ///     .build()
    ///     .expect("valid configuration");
    /// tracing::dispatcher::with_default(&dispatch, || {
    ///     let _request = tracing::info_span!("request").entered();
    ///     tracing::debug!("kept until the request fails or ends");
    /// });
    /// assert_eq!(guard.buffer_stats(0).expect("buffered output").discarded, 1);
    /// ```
    pub fn buffer_until_error(mut self, config: BufferConfig) -> Self {
        self.first = self.first.buffer_until_error(config);
        self
    }

    /// Writes the lines of requests marked by a trusted caller's baggage
    /// at the level the mark asks for, within a floor and a rate limit:
    /// see [`VerbosityConfig`] for what it costs and who can raise.
    ///
    /// ```
    /// use tracing::Level;
    /// use tracing_correlation::VerbosityConfig;
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .verbosity_from_baggage(VerbosityConfig::new("log.level").floor(Level::DEBUG))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn verbosity_from_baggage(mut self, config: VerbosityConfig) -> Self {
        self.verbosity = Some(config);
        self
    }

    /// Span lifecycle lines on the first output (none by default): see
    /// [`Output::span_lines`].
    ///
    /// ```
    /// use tracing_correlation::SpanLines;
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .span_lines(SpanLines::CLOSED)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn span_lines(mut self, span_lines: SpanLines) -> Self {
        self.first = self.first.span_lines(span_lines);
        self
    }

    /// Which spans exist (`RUST_LOG` syntax), instead of `RUST_LOG_SPANS`;
    /// `info` when neither is set. A span that exists gets ids, is entered
    /// into the OpenTelemetry context, is propagated by the middleware and
    /// exported; a span no output's line filter enables is never written,
    /// but the lines inside it carry its ids. Spans any output's line filter
    /// enables exist too.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .filter("warn")
    ///     .span_filter("info,hyper=off")
    ///     .build()
    ///     .expect("valid directives");
    /// # drop(dispatch);
    /// ```
    pub fn span_filter(mut self, directives: impl Into<String>) -> Self {
        self.span_filter = Some(directives.into());
        self
    }

    /// Whether to install the panic hook (on by default): a panic is logged
    /// as an `ERROR` event carrying the panicking thread's trace ids, every
    /// output is flushed (at most one second), then the previous hook runs —
    /// so a `panic = "abort"` binary keeps the panic line and every line
    /// before it.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .panic_hook(false)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// How many frames the panic line's `panic.backtrace` keeps (32 by
    /// default; 0 leaves it out). The backtrace is captured only when
    /// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one; it starts at
    /// the panicking frame, holds no frame of the hook or of std's panic
    /// machinery, and ends with a `[N more frames]` line when cut.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .panic_backtrace_frames(8)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn panic_backtrace_frames(mut self, frames: usize) -> Self {
        self.panic_backtrace_frames = frames;
        self
    }

    /// Whether to continue the trace of a parent process (on by default):
    /// when this process' environment holds a valid `TRACEPARENT` (and
    /// optionally `TRACESTATE`, `BAGGAGE`), as set by
    /// [`inject_into_command`](crate::inject_into_command), that context is
    /// attached on the thread calling `try_init` for the rest of its life, so
    /// spans created there are children of the parent's span. Other threads
    /// start their own traces unless given a context.
    ///
    /// ```
    /// // A long-running daemon: its lines are not part of whoever started it.
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .continue_trace_from_env(false)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn continue_trace_from_env(mut self, on: bool) -> Self {
        self.continue_env_trace = on;
        self
    }

    /// Whether to install the strict W3C trace-context and baggage
    /// propagators as OpenTelemetry's global propagator (on by default),
    /// honouring `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`).
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .propagators(false)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn propagators(mut self, on: bool) -> Self {
        self.propagators = on;
        self
    }

    /// Exports spans through this tracer provider: ids then come from the
    /// OpenTelemetry SDK, and the ids on each line equal the exported span's.
    /// The guard shuts the provider down (flushing spans) on drop.
    ///
    /// ```
    /// use tracing_correlation::opentelemetry_sdk::trace::SdkTracerProvider;
    ///
    /// let provider = SdkTracerProvider::builder().build();
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .tracer_provider(provider)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn tracer_provider(mut self, provider: SdkTracerProvider) -> Self {
        self.tracer_provider = Some(provider);
        self
    }

    /// Exports (or not) as this configuration says, instead of as the
    /// `OTEL_*` environment variables say (feature `otlp`).
    ///
    /// Without this call, the builder reads [`ExportConfig::from_env`](crate::ExportConfig::from_env):
    /// spans are exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER=otlp` is
    /// set, unless `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`.
    /// An explicit [`Builder::tracer_provider`] wins over both.
    ///
    /// ```no_run
    /// use tracing_correlation::{ExportConfig, ExportMode, OtlpProtocol};
    ///
    /// let _guard = tracing_correlation::builder()
    ///     .export(
    ///         ExportConfig::from_env()
    ///             .with_mode(ExportMode::Otlp)
    ///             .with_protocol(OtlpProtocol::Grpc)
    ///             .with_endpoint("http://collector:4317"),
    ///     )
    ///     .init();
    /// ```
    #[cfg(feature = "otlp")]
    pub fn export(mut self, config: crate::ExportConfig) -> Self {
        self.export = Some(config);
        self
    }

    /// Also exports events as OTLP log records, through `logs`' own filter
    /// (feature `otlp`): one more output, next to the lines. The collector
    /// and transport come from [`Builder::export`] or the `OTEL_*`
    /// variables (`OTEL_EXPORTER_OTLP_LOGS_*`, else the generic ones); each
    /// record carries the ids its line carries, whether spans are exported
    /// or not. Without this call, `OTEL_LOGS_EXPORTER=otlp` adds the same
    /// output, filtered by `RUST_LOG`.
    ///
    /// ```no_run
    /// use tracing_correlation::OtlpLogs;
    ///
    /// let _guard = tracing_correlation::builder()
    ///     .otlp_logs(OtlpLogs::new().filter("info"))
    ///     .init();
    /// ```
    #[cfg(feature = "otlp")]
    pub fn otlp_logs(mut self, logs: crate::OtlpLogs) -> Self {
        self.otlp_logs = Some(logs);
        self
    }

    /// Whether each event inside a span is also recorded as an OpenTelemetry
    /// span event (off by default; the first output's line filter decides
    /// which). Logs already carry the events, joined by their ids; copying
    /// each into its span costs about a microsecond per event and grows every
    /// exported span.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .otel_span_events(true)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn otel_span_events(mut self, on: bool) -> Self {
        self.otel_span_events = on;
        self
    }

    /// Which optional attributes tracing-opentelemetry adds to every
    /// exported span: `busy_ns`/`idle_ns`, `thread.*`, `code.*`. None by
    /// default ([`SpanDetails::NONE`](crate::SpanDetails::NONE)): the
    /// semantic conventions ask for none of them, and each costs time and
    /// bytes on every span.
    ///
    /// ```
    /// use tracing_correlation::SpanDetails;
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .otel_span_details(SpanDetails::NONE.with_timings(true))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn otel_span_details(mut self, details: crate::SpanDetails) -> Self {
        self.otel_span_details = details;
        self
    }

    /// Whether to install the [`LogBridge`](crate::LogBridge) as the `log`
    /// logger (on by default), so records of the `log` crate become events
    /// with the same ids, and `log::max_level` follows the filters. Turn it
    /// off to keep another `log` logger (wrap that one in a
    /// [`CorrelatedLogger`](crate::CorrelatedLogger) to add the ids).
    ///
    /// ```no_run
    /// let _guard = tracing_correlation::builder().log_bridge(false).init();
    /// ```
    pub fn log_bridge(mut self, on: bool) -> Self {
        self.log_bridge = on;
        self
    }

    /// The longest the guard waits on drop (5 s by default): first for spans
    /// to be exported, then, with what is left, for every output to write
    /// what it accepted. Lines still unwritten then are counted as lost and
    /// reported on stderr.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .shutdown_timeout(Duration::from_secs(2))
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Installs the subscriber, propagators and panic hook.
    ///
    /// # Errors
    ///
    /// [`InitError::AlreadyInitialized`] if a global subscriber is already
    /// set; [`InitError::InvalidFilter`] if the directives given to
    /// [`Builder::filter`], [`Output::filter`] or [`Builder::span_filter`]
    /// do not parse; [`InitError::LogLoggerAlreadySet`] if the log bridge is
    /// on and another `log` logger is installed. Nothing is installed on
    /// error. (One race remains: if another thread installs a global
    /// `tracing` subscriber while this call runs, the bridge stays installed
    /// and forwards into that subscriber.)
    ///
    /// ```no_run
    /// match tracing_correlation::builder().filter("info").try_init() {
    ///     Ok(guard) => std::mem::forget(guard), // keep it for the whole program
    ///     Err(error) => eprintln!("logging not set up: {error}"),
    /// }
    /// ```
    pub fn try_init(self) -> Result<LoggingGuard, InitError> {
        let (propagators, panic_hook, continue_env_trace, log_bridge) = (
            self.propagators,
            self.panic_hook,
            self.continue_env_trace,
            self.log_bridge,
        );
        let backtrace_frames = self.panic_backtrace_frames;
        // Checked before building: building starts writer threads and may
        // start an exporter.
        if tracing::dispatcher::has_been_set() {
            return Err(InitError::AlreadyInitialized);
        }
        let (dispatch, guard) = self.build()?;
        // The `log` logger cannot be uninstalled, so check the subscriber
        // slot first and fill the logger slot before it: on any error,
        // neither is changed. The bridge forwards nothing until
        // `log::max_level` is raised below.
        if log_bridge {
            if tracing::dispatcher::has_been_set() {
                return Err(InitError::AlreadyInitialized);
            }
            crate::LogBridge::set_logger().map_err(InitError::LogLoggerAlreadySet)?;
        }
        tracing::dispatcher::set_global_default(dispatch)
            .map_err(|_| InitError::AlreadyInitialized)?;
        if log_bridge {
            crate::LogBridge::sync_max_level();
        }
        if propagators {
            install_default_propagator();
        }
        if continue_env_trace {
            continue_trace_from_env();
        }
        if panic_hook {
            crate::panic_hook::set_backtrace_frames(backtrace_frames);
            crate::panic_hook::install();
        }
        Ok(guard)
    }

    /// Builds the subscriber without installing anything process-wide (no
    /// global subscriber, propagator or panic hook), for scoped use with
    /// `tracing::dispatcher::with_default`, tests and benchmarks.
    ///
    /// # Errors
    ///
    /// [`InitError::InvalidFilter`] if directives given to the builder do
    /// not parse. (Invalid directives in `RUST_LOG` or `RUST_LOG_SPANS` are
    /// reported on stderr and skipped, so a typo there never stops a
    /// service.)
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .filter("debug")
    ///     .build()
    ///     .expect("valid filter");
    /// tracing::dispatcher::with_default(&dispatch, || tracing::debug!("scoped"));
    /// ```
    #[allow(clippy::too_many_lines)] // the stack, assembled in order in one place
    pub fn build(mut self) -> Result<(tracing::Dispatch, LoggingGuard), InitError> {
        let env_lines = non_empty_env("RUST_LOG");
        let spans = Swappable::new(match self.span_filter.take() {
            Some(directives) => filter::parse(&directives)?,
            None => lossy_filter(
                SPANS_ENV,
                non_empty_env(SPANS_ENV).as_deref(),
                DEFAULT_SPANS,
            ),
        });
        let env_format = format_from_env();
        // Lines name the service as the exported resource does.
        let static_defaults =
            crate::format::static_fields::from_otel_env(|name| std::env::var(name).ok());
        let health = crate::export_health::HealthCounters::default();
        let (tracer_provider, logs_output) = self.take_providers(&health);

        let outputs: Vec<Output> = std::iter::once(self.first).chain(self.more).collect();
        let mut line_filters = (outputs.iter())
            .map(|output| output_filter(output.filter.as_deref(), env_lines.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let logs_lines = (logs_output.as_ref())
            .map(|logs| output_filter(logs.filter.as_deref(), env_lines.as_deref()))
            .transpose()?;
        line_filters.extend(logs_lines.clone());
        let span_set = SpanSet::new(spans.clone(), line_filters.clone());

        let mut layers: Vec<BoxedLayer> = Vec::with_capacity(outputs.len() + 2);
        let correlation = if tracer_provider.is_some() {
            CorrelationLayer::with_opentelemetry()
        } else {
            CorrelationLayer::new()
        };
        // The layers that act on spans only decide spans by the same span
        // set as every output: the correlation layer (and the OpenTelemetry
        // layer, ignoring events) go under the first output's filter as one
        // layer, so each span callback pays one per-layer filter check
        // instead of one per layer. With span events on, the OpenTelemetry
        // layer keeps a filter of its own: the first output's filter may
        // also let through events captured for its error buffer.
        let mut span_layers: Option<BoxedLayer> = Some(match &tracer_provider {
            Some(provider) => {
                let otel = crate::otel_layer::span_layer(provider, self.otel_span_details);
                if self.otel_span_events {
                    layers.push(
                        otel.with_filter(SplitFilter::new(
                            span_set.clone(),
                            line_filters[0].clone(),
                        ))
                        .boxed(),
                    );
                    correlation.boxed()
                } else {
                    IgnoreEvents(otel).and_then(correlation).boxed()
                }
            }
            None => correlation.boxed(),
        });
        let raise = self.verbosity.take().map(|c| Arc::new(Verbosity::new(c)));
        if let Some(raise) = &raise {
            // After the correlation layer (it reads the span's ids), under
            // the same filter: it decides spans alike and ignores events.
            span_layers = span_layers.map(|span_layers| {
                span_layers
                    .and_then(VerbosityLayer::new(raise.clone()))
                    .boxed()
            });
        }
        let mut captures = Vec::with_capacity(outputs.len());
        for output in &outputs {
            captures.push(match &output.buffer {
                Some(config) => Some((
                    Swappable::new(filter::parse(&config.capture)?),
                    Arc::new(TraceBuffers::new(config)),
                )),
                None => None,
            });
        }
        let mut gate = Some(
            LogRecordGate::new(
                line_filters
                    .iter()
                    .cloned()
                    .chain(captures.iter().flatten().map(|(c, _)| c.clone()))
                    .collect(),
                !self.layers.is_empty() || self.otel_span_events,
            )
            .with_raise(raise.clone()),
        );
        let gate_filters: Vec<Swappable> = line_filters
            .iter()
            .cloned()
            .chain(captures.iter().flatten().map(|(c, _)| c.clone()))
            .collect();
        let buffers: Vec<Option<Arc<TraceBuffers>>> = captures
            .iter()
            .map(|c| c.as_ref().map(|(_, b)| b.clone()))
            .collect();
        // On the first output only, like the gate.
        let mut sdk_diagnostics = Some(crate::export_health::SdkDiagnostics::new(health.clone()));
        let mut sinks = Vec::with_capacity(outputs.len());
        // One output and nothing else in the stack: its filter decides for
        // the whole subscriber (see `GlobalFilter`), as cheaply as a global
        // filter. A raise keeps the per-layer filters its gate relies on.
        let alone = outputs.len() == 1
            && logs_output.is_none()
            && self.span_layer.is_none()
            && self.layers.is_empty()
            && !self.otel_span_events
            && raise.is_none();
        let mut global = None;
        for ((output, lines), capture) in outputs.into_iter().zip(&line_filters).zip(captures) {
            let format = output.format.unwrap_or(env_format);
            let mode = output.write_mode();
            let hook = capture
                .as_ref()
                .map(|(_, b)| BufferHook::new(b.clone(), lines.clone(), raise.clone()));
            let filter =
                SplitFilter::new(span_set.clone(), lines.clone()).with_extra(ExtraEvents {
                    capture: capture.map(|(c, _)| c),
                    raise: raise.clone(),
                });
            let json = (format == OutputFormat::Json).then(|| {
                output
                    .json
                    .unwrap_or_default()
                    .with_default_static_fields(static_defaults.clone())
            });
            // The "lines dropped" line in the output's own format.
            let report = match &json {
                Some(json) => crate::output::layer::drop_report(json.clone()),
                None => DropReport::Text,
            };
            let sink = LineSink::new(output.target, mode, output.capacity, report);
            sinks.push(sink.clone());
            let span_lines = output.span_lines.unwrap_or_default();
            let layer = match json {
                Some(json) => OutputLayer::new(json, sink, gate.take())
                    .with_span_lines(span_lines, lines.clone())
                    .with_buffer(hook)
                    .with_sdk_diagnostics(sdk_diagnostics.take())
                    .boxed(),
                None => OutputLayer::new(PrettyFormat::new(), sink, gate.take())
                    .with_span_lines(span_lines, lines.clone())
                    .with_buffer(hook)
                    .with_sdk_diagnostics(sdk_diagnostics.take())
                    .boxed(),
            };
            // The first output also carries the span layers, under its
            // filter, which also lets the SDK's warnings through: its layer
            // hands them to the export health (never a line: counted and
            // reported once).
            match span_layers.take() {
                // Not boxed once more: each span callback would pay one more
                // dynamic call.
                Some(span_layers) if alone => {
                    global = Some(GlobalFilter::new(
                        filter.with_sdk_warnings(),
                        span_layers.and_then(layer),
                    ));
                }
                Some(span_layers) => layers.push(
                    span_layers
                        .and_then(layer)
                        .with_filter(filter.with_sdk_warnings())
                        .boxed(),
                ),
                None => layers.push(layer.with_filter(filter).boxed()),
            }
        }
        let logger_provider = logs_output.zip(logs_lines).map(|(logs, lines)| {
            layers.push(logs.layer(SplitFilter::new(span_set.clone(), lines)));
            logs.provider
        });
        if let Some(span_layer) = self.span_layer.take() {
            layers.push(
                span_layer
                    .with_filter(SplitFilter::spans_only(span_set.clone()))
                    .boxed(),
            );
        }
        layers.append(&mut self.layers);

        // With a raise, a gate in front refuses cheaply the events only a
        // raise could enable on threads in no raised span.
        let dispatch = match (global, &raise) {
            (Some(global), _) => {
                tracing::Dispatch::new(tracing_subscriber::registry().with(global))
            }
            (None, Some(raise)) => tracing::Dispatch::new(RaiseGate::new(
                tracing_subscriber::registry().with(layers),
                raise.clone(),
                gate_filters,
            )),
            (None, None) => tracing::Dispatch::new(tracing_subscriber::registry().with(layers)),
        };
        let guard = LoggingGuard {
            provider: tracer_provider,
            sinks,
            filters: FilterHandle::new(spans, line_filters),
            shutdown_timeout: self.shutdown_timeout,
            buffers,
            verbosity: raise,
            health,
            logger_provider,
        };
        Ok((dispatch, guard))
    }

    /// What a test capture wants where the caller chose nothing: every
    /// line and span, nothing process-wide; `spans` sees the spans that
    /// exist.
    pub(crate) fn capture_defaults(mut self, spans: BoxedLayer) -> Self {
        self.span_layer = Some(spans);
        if self.first.filter.is_none() {
            self.first = self.first.filter("trace");
        }
        if self.span_filter.is_none() {
            self.span_filter = Some("trace".to_owned());
        }
        self
    }

    /// The explicit tracer provider, else the one export configuration asks
    /// for, and the OTLP log output if asked for.
    fn take_providers(
        &mut self,
        health: &crate::export_health::HealthCounters,
    ) -> (Option<SdkTracerProvider>, Option<LogsOutput>) {
        let explicit = self.tracer_provider.take();
        #[cfg(not(feature = "otlp"))]
        {
            let _ = health;
            (explicit, None)
        }
        #[cfg(feature = "otlp")]
        {
            let want_traces = explicit.is_none();
            let (traces, logs) = providers_from_export_config(
                self.export.take(),
                self.otlp_logs.take(),
                want_traces,
                health,
            );
            (explicit.or(traces), logs)
        }
    }

    /// Like [`Builder::try_init`], but panics on error.
    ///
    /// # Panics
    ///
    /// If a global `tracing` subscriber is already installed, another `log`
    /// logger is, or a filter given to the builder is invalid.
    ///
    /// ```no_run
    /// let _guard = tracing_correlation::builder().filter("info").init();
    /// ```
    pub fn init(self) -> LoggingGuard {
        match self.try_init() {
            Ok(guard) => guard,
            Err(error) => panic!("tracing-correlation: {error}"),
        }
    }
}

/// An output's line filter: its own directives, else `RUST_LOG` (`info`).
fn output_filter(directives: Option<&str>, env: Option<&str>) -> Result<Swappable, FilterError> {
    Ok(Swappable::new(match directives {
        Some(directives) => filter::parse(directives)?,
        None => lossy_filter("RUST_LOG", env, "info"),
    }))
}

/// A filter from directives read from the environment: invalid ones are
/// reported (never printed by `EnvFilter` itself, whose `eprintln!` would
/// panic on a closed stderr) and skipped; none valid means `default`.
fn lossy_filter(variable: &str, directives: Option<&str>, default: &str) -> Directives {
    let mut valid = String::new();
    for directive in directives.unwrap_or(default).split(',') {
        let directive = directive.trim();
        if directive.is_empty() {
            continue;
        }
        match directive.parse::<Directive>() {
            Ok(_) => {
                if !valid.is_empty() {
                    valid.push(',');
                }
                valid.push_str(directive);
            }
            Err(error) => crate::diagnostics::report!(
                "{variable}: ignoring the invalid directive {directive:?}: {error}"
            ),
        }
    }
    if valid.is_empty() {
        valid.push_str(default);
    }
    // Each directive parsed on its own; together they still may not (two
    // conflicting span filters, say): then the default.
    filter::parse(&valid)
        .or_else(|_| filter::parse(default))
        .unwrap_or_else(|_| filter::Directives::nothing())
}

/// Installs the strict W3C propagators chosen by `OTEL_PROPAGATORS` as
/// OpenTelemetry's global propagator.
fn install_default_propagator() {
    opentelemetry::global::set_text_map_propagator(crate::propagator_from_env());
}

thread_local! {
    /// The trace this process continues (from `TRACEPARENT` in its own
    /// environment), attached on the thread that initialised logging until
    /// that thread ends.
    static ENV_PARENT: std::cell::RefCell<Option<opentelemetry::ContextGuard>> =
        const { std::cell::RefCell::new(None) };
}

/// Attaches the trace context found in this process' environment, if any, on
/// the calling thread.
fn continue_trace_from_env() -> Option<crate::TraceIds> {
    let context = crate::context_from_env();
    let ids = crate::TraceIds::from_context(&context)?;
    let _ = ENV_PARENT.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = Some(context.attach());
        }
    });
    Some(ids)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn format_from_env() -> OutputFormat {
    match non_empty_env("LOG_FORMAT") {
        None => OutputFormat::Json,
        Some(value) if value.trim().eq_ignore_ascii_case("json") => OutputFormat::Json,
        Some(value) if value.trim().eq_ignore_ascii_case("pretty") => OutputFormat::Pretty,
        Some(value) => {
            crate::diagnostics::report!(
                "LOG_FORMAT={value:?} is neither `json` nor `pretty`; using json"
            );
            OutputFormat::Json
        }
    }
}

/// Why setup failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A global `tracing` subscriber was already installed.
    #[error(
        "a global tracing subscriber is already installed: call init_json_logging() once, \
         at the start of main, or add CorrelationLayer and JsonFormat to your own subscriber"
    )]
    AlreadyInitialized,
    /// Filter directives given to the builder did not parse.
    #[error(transparent)]
    InvalidFilter(#[from] FilterError),
    /// Another `log` logger (env_logger, log4rs…) was already installed, so
    /// the log bridge could not be; nothing was installed.
    #[error(
        "another `log` logger is already installed, so `log` records cannot be forwarded \
         (nothing was installed): remove the other logger's initialisation, or keep it with \
         `builder().log_bridge(false)` and wrap it in `CorrelatedLogger` to add the trace ids"
    )]
    LogLoggerAlreadySet(#[source] log::SetLoggerError),
}

/// Flushes logs (and exported spans) when dropped; keep it alive until the
/// end of `main`.
///
/// On drop it shuts the tracer provider down (waiting at most the
/// [shutdown timeout](Builder::shutdown_timeout)), then has every output
/// write what it accepted, within what is left of that timeout, and reports
/// on stderr how many lines were dropped or lost, if any. Lines logged after
/// the drop (by other threads still running) are written directly.
///
/// What survives how a program ends:
///
/// * return from `main`, or [`LoggingGuard::shutdown`]: every line, unless
///   the output is stalled past the shutdown timeout; the exact number not
///   written is reported;
/// * `std::process::exit`: destructors do not run, so lines still queued in
///   a background output are lost — call [`LoggingGuard::flush`] first;
/// * a panic (with the panic hook, on by default), including with
///   `panic = "abort"`: the panic line and every line before it are flushed
///   (at most one second) before the previous hook runs;
/// * SIGTERM / SIGINT: the default action kills the process without
///   running destructors; install a handler that returns from `main` (or
///   calls `flush`) to keep queued lines;
/// * SIGKILL, or an abort outside a panic: lines still queued in a
///   background output are lost; [`WriteMode::Direct`] loses none that were
///   logged before it.
#[must_use = "dropping the guard at once flushes and stops export; bind it: `let _guard = …`"]
#[derive(Debug)]
pub struct LoggingGuard {
    provider: Option<SdkTracerProvider>,
    sinks: Vec<LineSink>,
    filters: FilterHandle,
    shutdown_timeout: Duration,
    /// Each output's error buffer, if it has one.
    buffers: Vec<Option<Arc<TraceBuffers>>>,
    verbosity: Option<Arc<Verbosity>>,
    health: crate::export_health::HealthCounters,
    #[cfg(feature = "otlp")]
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    #[cfg(not(feature = "otlp"))]
    logger_provider: Option<std::convert::Infallible>,
}

/// What the outputs did, from [`LoggingGuard::shutdown`] or
/// [`LoggingGuard::report`]: one [`OutputReport`] per output, in the order
/// they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Each output's counts.
    pub outputs: Vec<OutputReport>,
}

impl ShutdownReport {
    /// Lines refused because an output's buffer was full
    /// ([`WriteMode::Drop`]) or because a writer logged while writing.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.outputs.iter().map(|o| o.dropped).sum()
    }

    /// Lines accepted but never written (a failing target, or a shutdown
    /// timeout).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.outputs.iter().map(|o| o.lost).sum()
    }
}

impl LoggingGuard {
    /// How many lines the outputs have dropped so far (full buffer in
    /// [`WriteMode::Drop`], or a writer that logged).
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .expect("valid configuration");
    /// tracing::dispatcher::with_default(&dispatch, || tracing::info!("kept"));
    /// assert_eq!(guard.dropped_lines(), 0);
    /// ```
    #[must_use]
    pub fn dropped_lines(&self) -> u64 {
        self.report().dropped()
    }

    /// Each output's counts so far.
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .expect("valid configuration");
    /// tracing::dispatcher::with_default(&dispatch, || tracing::info!("one line"));
    /// assert_eq!(guard.report().outputs[0].written, 1);
    /// ```
    #[must_use]
    pub fn report(&self) -> ShutdownReport {
        ShutdownReport {
            outputs: self.sinks.iter().map(LineSink::report).collect(),
        }
    }

    /// Waits until every line logged before the call is written, at most
    /// the shutdown timeout; `true` when all were. For programs that leave
    /// through `std::process::exit`, which runs no destructor.
    ///
    /// ```no_run
    /// let guard = tracing_correlation::init_json_logging().expect("first init");
    /// tracing::error!("fatal: configuration missing");
    /// guard.flush();
    /// std::process::exit(2);
    /// ```
    pub fn flush(&self) -> bool {
        let deadline = Instant::now() + self.shutdown_timeout;
        self.sinks
            .iter()
            .all(|sink| sink.flush(deadline.saturating_duration_since(Instant::now())))
    }

    /// What span (and OTLP log) export did so far: items exported, lost
    /// to failed exports, dropped by a full queue, and whether exports are
    /// failing now. The first failure of each signal, and its recovery, are
    /// also reported once on stderr.
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .expect("valid configuration");
    /// # drop(dispatch);
    /// assert_eq!(guard.export_health(), tracing_correlation::ExportHealth::default());
    /// ```
    #[must_use]
    pub fn export_health(&self) -> crate::ExportHealth {
        self.health.snapshot()
    }

    /// A handle that changes the filters while the program runs.
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .expect("valid configuration");
    /// guard.filter_handle().reload("debug").expect("valid directives");
    /// # drop(dispatch);
    /// ```
    #[must_use]
    pub fn filter_handle(&self) -> FilterHandle {
        self.filters.clone()
    }

    /// Shuts down as dropping the guard does, and says what happened, so a
    /// program can act on lost lines (exit with an error code, say).
    ///
    /// ```no_run
    /// let guard = tracing_correlation::init_json_logging().expect("first init");
    /// tracing::info!("work done");
    /// let report = guard.shutdown();
    /// if report.lost() > 0 {
    ///     std::process::exit(1);
    /// }
    /// ```
    pub fn shutdown(mut self) -> ShutdownReport {
        self.shutdown_all()
    }

    /// What output `index`'s error buffer did so far (`None` when that
    /// output has none): see [`Builder::buffer_until_error`].
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .build()
    ///     .expect("valid configuration");
    /// assert!(guard.buffer_stats(0).is_none(), "no buffer configured");
    /// # drop(dispatch);
    /// ```
    #[must_use]
    pub fn buffer_stats(&self, index: usize) -> Option<BufferStats> {
        self.buffers.get(index)?.as_ref().map(|b| b.stats())
    }

    /// What the per-request raise did so far (`None` without
    /// [`Builder::verbosity_from_baggage`]).
    ///
    /// ```
    /// let (dispatch, guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .verbosity_from_baggage(tracing_correlation::VerbosityConfig::new("log.level"))
    ///     .build()
    ///     .expect("valid configuration");
    /// assert_eq!(guard.verbosity_stats().expect("configured").raised, 0);
    /// # drop(dispatch);
    /// ```
    #[must_use]
    pub fn verbosity_stats(&self) -> Option<VerbosityStats> {
        self.verbosity.as_ref().map(|v| v.stats())
    }

    fn shutdown_all(&mut self) -> ShutdownReport {
        let deadline = Instant::now() + self.shutdown_timeout;
        // Failed traces' buffers were written when they failed; the rest
        // belong to requests that have not failed, and go.
        for buffer in self.buffers.iter().flatten() {
            buffer.shutdown();
        }
        if let Some(provider) = self.provider.take() {
            shutdown_provider(&provider, self.shutdown_timeout);
        }
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.logger_provider.take() {
            crate::otlp::shutdown_logger_provider(
                &provider,
                deadline.saturating_duration_since(Instant::now()),
            );
        }
        let outputs = self
            .sinks
            .iter()
            .map(|sink| sink.shutdown(deadline.saturating_duration_since(Instant::now())))
            .collect();
        self.sinks.clear();
        ShutdownReport { outputs }
    }
}

impl Drop for LoggingGuard {
    fn drop(&mut self) {
        if self.provider.is_some() || self.logger_provider.is_some() || !self.sinks.is_empty() {
            self.shutdown_all();
        }
    }
}

/// The exporting provider the configuration (or the environment) asks for;
/// `None` for stand-alone. Problems are reported once on stderr and never
/// stop logging: the process then runs stand-alone.
#[cfg(feature = "otlp")]
fn providers_from_export_config(
    config: Option<crate::ExportConfig>,
    logs: Option<crate::OtlpLogs>,
    want_traces: bool,
    health: &crate::export_health::HealthCounters,
) -> (Option<SdkTracerProvider>, Option<LogsOutput>) {
    let mut config = config.unwrap_or_else(crate::ExportConfig::from_env);
    if logs.is_some() {
        config = config.with_logs(true);
    }
    config.report_warnings();
    let traces = (want_traces && config.mode() == crate::ExportMode::Otlp)
        .then(|| crate::otlp::build_counted_tracer_provider(&config, health))
        .and_then(|built| {
            built
                .map_err(|error| {
                    crate::diagnostics::report!(
                        "span export disabled, logging stand-alone: {error}"
                    );
                })
                .ok()
        });
    let logs = config
        .logs()
        .then(|| crate::otlp::build_logger_provider(&config, health))
        .and_then(|built| {
            built
                .map_err(|error| crate::diagnostics::report!("OTLP log export disabled: {error}"))
                .ok()
        })
        .map(|provider| LogsOutput {
            provider,
            filter: logs.and_then(|logs| logs.filter),
        });
    (traces, logs)
}

/// The OTLP log output: its provider and line filter directives.
#[cfg(feature = "otlp")]
pub(crate) struct LogsOutput {
    provider: opentelemetry_sdk::logs::SdkLoggerProvider,
    filter: Option<String>,
}

#[cfg(feature = "otlp")]
impl LogsOutput {
    fn layer(&self, filter: SplitFilter) -> BoxedLayer {
        crate::otlp::OtlpLogLayer::new(&self.provider)
            .with_filter(tracing_subscriber::filter::FilterExt::and(
                filter,
                crate::export_health::NotSdkInternal,
            ))
            .boxed()
    }
}

/// Never built without the `otlp` feature.
#[cfg(not(feature = "otlp"))]
pub(crate) struct LogsOutput {
    provider: std::convert::Infallible,
    filter: Option<String>,
}

#[cfg(not(feature = "otlp"))]
impl LogsOutput {
    fn layer(&self, _: SplitFilter) -> BoxedLayer {
        match self.provider {}
    }
}

/// Shuts a provider down, waiting at most `timeout`, so an unreachable
/// collector never holds the application's exit; a failure is reported once.
#[cfg(feature = "otlp")]
pub(crate) fn shutdown_provider(provider: &SdkTracerProvider, timeout: Duration) {
    if let Err(error) = crate::shutdown_with_timeout(provider, timeout) {
        crate::diagnostics::report!("{error}");
    }
}

/// Shuts a provider down on a helper thread, waiting at most `timeout`, so an
/// unreachable collector never holds the application's exit.
#[cfg(not(feature = "otlp"))]
pub(crate) fn shutdown_provider(provider: &SdkTracerProvider, timeout: Duration) {
    let provider = provider.clone();
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("tracing-correlation-shutdown".into())
        .spawn(move || {
            let _ = done.send(provider.shutdown_with_timeout(timeout));
        });
    if spawned.is_ok() {
        match wait.recv_timeout(timeout + Duration::from_millis(100)) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => crate::diagnostics::report!("span export shutdown failed: {error}"),
            Err(_) => crate::diagnostics::report!(
                "span export did not finish within {timeout:?}; unexported spans were dropped"
            ),
        }
    }
}
