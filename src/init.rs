//! One-call setup: `init_json_logging()` and the [`Builder`] behind it.

use std::io;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{filter_fn, EnvFilter, ParseError};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::writer::ReentrancyLimited;
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

/// The output format of [`Builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line ([`JsonFormat`]).
    Json,
    /// Human-readable lines with the ids ([`PrettyFormat`]).
    Pretty,
}

/// Whether a non-blocking writer may drop lines when its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonBlockingMode {
    /// Never drop: a logging call waits when the buffer is full.
    Lossless,
    /// Drop lines when the buffer is full; [`LoggingGuard::dropped_lines`]
    /// counts them and the guard reports the count on drop.
    Lossy,
}

/// Every choice [`init_json_logging`] makes, each one overridable.
///
/// Environment variables are read when [`Builder::try_init`] runs, and an
/// explicit builder call always wins over them.
#[derive(Debug)]
#[must_use = "a Builder does nothing until `init` or `try_init` is called"]
#[allow(clippy::struct_excessive_bools)] // independent on/off switches, each with its own setter
pub struct Builder<W = fn() -> io::Stdout> {
    writer: W,
    worker: Option<(WorkerGuard, Option<ErrorCounter>)>,
    format: Option<OutputFormat>,
    json: JsonFormat,
    filter: Option<String>,
    panic_hook: bool,
    propagators: bool,
    continue_env_trace: bool,
    tracer_provider: Option<SdkTracerProvider>,
    #[cfg(feature = "otlp")]
    export: Option<crate::ExportConfig>,
    otel_span_events: bool,
    shutdown_timeout: Duration,
    log_bridge: bool,
}

impl Builder {
    fn new() -> Self {
        Self {
            writer: io::stdout,
            worker: None,
            format: None,
            json: JsonFormat::new(),
            filter: None,
            panic_hook: true,
            propagators: true,
            continue_env_trace: true,
            tracer_provider: None,
            #[cfg(feature = "otlp")]
            export: None,
            otel_span_events: false,
            shutdown_timeout: Duration::from_secs(5),
            log_bridge: true,
        }
    }
}

impl<W> Builder<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// Writes to another `MakeWriter` (stderr, a file, an in-memory buffer…).
    pub fn writer<W2>(self, writer: W2) -> Builder<W2>
    where
        W2: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Builder {
            writer,
            worker: self.worker,
            format: self.format,
            json: self.json,
            filter: self.filter,
            panic_hook: self.panic_hook,
            propagators: self.propagators,
            continue_env_trace: self.continue_env_trace,
            tracer_provider: self.tracer_provider,
            #[cfg(feature = "otlp")]
            export: self.export,
            otel_span_events: self.otel_span_events,
            shutdown_timeout: self.shutdown_timeout,
            log_bridge: self.log_bridge,
        }
    }

    /// Writes through a background thread, so logging never waits on a slow
    /// `writer` (a pipe, a file on a busy disk). With
    /// [`NonBlockingMode::Lossless`] nothing is ever dropped; with
    /// [`NonBlockingMode::Lossy`] lines beyond `buffered_lines` waiting lines are
    /// dropped and counted. The guard flushes on drop (waiting at most one
    /// second for the writer thread).
    pub fn non_blocking<T>(
        self,
        writer: T,
        mode: NonBlockingMode,
        buffered_lines: usize,
    ) -> Builder<NonBlocking>
    where
        T: io::Write + Send + 'static,
    {
        let (non_blocking, guard) = NonBlockingBuilder::default()
            .lossy(mode == NonBlockingMode::Lossy)
            .buffered_lines_limit(buffered_lines.max(1))
            .thread_name("tracing-correlation-writer")
            .finish(writer);
        let counter = (mode == NonBlockingMode::Lossy).then(|| non_blocking.error_counter());
        let mut builder = self.writer(non_blocking);
        builder.worker = Some((guard, counter));
        builder
    }

    /// Chooses JSON or human-readable output. Unset, `LOG_FORMAT`
    /// (`json` or `pretty`) decides, and JSON is the default.
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Sets the JSON format's options (keys, field placement, span list…).
    pub fn json(mut self, json: JsonFormat) -> Self {
        self.json = json;
        self
    }

    /// Uses these filter directives (`RUST_LOG` syntax) instead of
    /// `RUST_LOG`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// Whether to install the panic hook (on by default): a panic is logged
    /// as an `ERROR` event carrying the panicking thread's trace ids, then the
    /// previous hook runs.
    pub fn panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// Whether to continue the trace of a parent process (on by default):
    /// when this process' environment holds a valid `TRACEPARENT` (and
    /// optionally `TRACESTATE`, `BAGGAGE`), as set by
    /// [`inject_into_command`](crate::inject_into_command), that context is
    /// attached on the thread calling `try_init` for the rest of its life, so
    /// spans created there are children of the parent's span. Other threads
    /// start their own traces unless given a context.
    pub fn continue_trace_from_env(mut self, on: bool) -> Self {
        self.continue_env_trace = on;
        self
    }

    /// Whether to install the strict W3C trace-context and baggage
    /// propagators as OpenTelemetry's global propagator (on by default),
    /// honouring `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`).
    pub fn propagators(mut self, on: bool) -> Self {
        self.propagators = on;
        self
    }

    /// Exports spans through this tracer provider: ids then come from the
    /// OpenTelemetry SDK, and the ids on each line equal the exported span's.
    /// The guard shuts the provider down (flushing spans) on drop.
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

    /// Whether each event inside a span is also recorded as an OpenTelemetry
    /// span event (off by default). Logs already carry the events, joined by
    /// their ids; copying each into its span costs about a microsecond per
    /// event and grows every exported span.
    pub fn otel_span_events(mut self, on: bool) -> Self {
        self.otel_span_events = on;
        self
    }

    /// Whether to install the [`LogBridge`](crate::LogBridge) as the `log`
    /// logger (on by default), so records of the `log` crate become events
    /// with the same ids, and `log::max_level` follows the filter. Turn it
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

    /// The longest the guard waits on drop for spans to be exported (5 s by
    /// default).
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
    /// [`Builder::filter`] do not parse; [`InitError::LogLoggerAlreadySet`]
    /// if the log bridge is on and another `log` logger is installed. Nothing
    /// is installed on error. (One race remains: if another thread installs a
    /// global `tracing` subscriber while this call runs, the bridge stays
    /// installed and forwards into that subscriber.)
    pub fn try_init(self) -> Result<LoggingGuard, InitError> {
        let (propagators, panic_hook, continue_env_trace, log_bridge) = (
            self.propagators,
            self.panic_hook,
            self.continue_env_trace,
            self.log_bridge,
        );
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
    /// [`InitError::InvalidFilter`] if the directives given to
    /// [`Builder::filter`] do not parse.
    ///
    /// ```
    /// let (dispatch, _guard) = tracing_correlation::builder()
    ///     .writer(std::io::sink)
    ///     .filter("debug")
    ///     .build()
    ///     .expect("valid filter");
    /// tracing::dispatcher::with_default(&dispatch, || tracing::debug!("scoped"));
    /// ```
    pub fn build(mut self) -> Result<(tracing::Dispatch, LoggingGuard), InitError> {
        let filter = if let Some(directives) = &self.filter {
            EnvFilter::builder()
                .parse(directives)
                .map_err(|source| InitError::InvalidFilter {
                    directives: directives.clone(),
                    source,
                })?
        } else {
            let from_env = non_empty_env("RUST_LOG");
            EnvFilter::builder().parse_lossy(from_env.as_deref().unwrap_or("info"))
        };
        let format = self.format.unwrap_or_else(format_from_env);
        let tracer_provider = self.take_tracer_provider();

        let otel_layer = tracer_provider.as_ref().map(|provider| {
            let tracer = provider.tracer("tracing-correlation");
            let layer = tracing_opentelemetry::layer().with_tracer(tracer);
            if self.otel_span_events {
                layer.boxed()
            } else {
                layer.with_filter(spans_only()).boxed()
            }
        });
        let correlation = if tracer_provider.is_some() {
            CorrelationLayer::with_opentelemetry()
        } else {
            CorrelationLayer::new()
        };
        let fmt_layer = match format {
            OutputFormat::Json => tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(SpanFieldsFromCorrelationLayer)
                .event_format(self.json)
                .with_writer(ReentrancyLimited(self.writer))
                .boxed(),
            OutputFormat::Pretty => tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(SpanFieldsFromCorrelationLayer)
                .event_format(PrettyFormat::new())
                .with_writer(ReentrancyLimited(self.writer))
                .boxed(),
        };

        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(otel_layer)
            .with(correlation)
            .with(fmt_layer);
        let (worker, dropped) = match self.worker {
            Some((guard, counter)) => (Some(guard), counter),
            None => (None, None),
        };
        let guard = LoggingGuard {
            provider: tracer_provider,
            worker,
            dropped,
            shutdown_timeout: self.shutdown_timeout,
        };
        Ok((tracing::Dispatch::new(subscriber), guard))
    }

    /// The explicit provider, else the one export configuration asks for.
    fn take_tracer_provider(&mut self) -> Option<SdkTracerProvider> {
        let explicit = self.tracer_provider.take();
        #[cfg(feature = "otlp")]
        let explicit = explicit.or_else(|| provider_from_export_config(self.export.take()));
        explicit
    }

    /// Like [`Builder::try_init`], but panics on error.
    ///
    /// # Panics
    ///
    /// If a global `tracing` subscriber is already installed, or the filter
    /// given to [`Builder::filter`] is invalid.
    pub fn init(self) -> LoggingGuard {
        match self.try_init() {
            Ok(guard) => guard,
            Err(error) => panic!("tracing-correlation: {error}"),
        }
    }
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

/// The fmt layer formats each span's fields for its own use; ours come from
/// the correlation layer, so that work is skipped.
#[derive(Debug, Clone, Copy, Default)]
struct SpanFieldsFromCorrelationLayer;

impl<'w> FormatFields<'w> for SpanFieldsFromCorrelationLayer {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> std::fmt::Result {
        Ok(())
    }

    fn add_fields(
        &self,
        _current: &'w mut tracing_subscriber::fmt::FormattedFields<Self>,
        _fields: &tracing_core::span::Record<'_>,
    ) -> std::fmt::Result {
        Ok(())
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
    /// The filter directives did not parse.
    #[error("invalid log filter {directives:?}: {source}; use RUST_LOG syntax such as `info,my_crate=debug`")]
    InvalidFilter {
        /// The directives as given.
        directives: String,
        /// The parser's complaint.
        source: ParseError,
    },
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
/// [shutdown timeout](Builder::shutdown_timeout)), then lets a non-blocking
/// writer drain (at most one second), then reports on stderr how many lines a
/// lossy writer dropped, if any.
#[must_use = "dropping the guard at once flushes and stops export; bind it: `let _guard = …`"]
#[derive(Debug)]
pub struct LoggingGuard {
    provider: Option<SdkTracerProvider>,
    worker: Option<WorkerGuard>,
    dropped: Option<ErrorCounter>,
    shutdown_timeout: Duration,
}

impl LoggingGuard {
    /// How many lines a lossy non-blocking writer has dropped so far (always
    /// 0 otherwise).
    #[must_use]
    pub fn dropped_lines(&self) -> usize {
        self.dropped.as_ref().map_or(0, ErrorCounter::dropped_lines)
    }
}

impl Drop for LoggingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            shutdown_provider(&provider, self.shutdown_timeout);
        }
        drop(self.worker.take());
        let dropped = self.dropped_lines();
        if dropped > 0 {
            crate::diagnostics::report!(
                "the non-blocking writer dropped {dropped} log lines because its buffer was full"
            );
        }
        let _ = io::Write::flush(&mut io::stdout());
    }
}

/// A per-layer filter letting spans, not events, reach the OpenTelemetry layer.
fn spans_only() -> tracing_subscriber::filter::FilterFn<impl Fn(&tracing_core::Metadata<'_>) -> bool>
{
    // A closure, not `Metadata::is_span`: the filter needs a higher-ranked `Fn`.
    #[allow(clippy::redundant_closure_for_method_calls)]
    filter_fn(|meta| meta.is_span())
}

/// The exporting provider the configuration (or the environment) asks for;
/// `None` for stand-alone. Problems are reported once on stderr and never
/// stop logging: the process then runs stand-alone.
#[cfg(feature = "otlp")]
fn provider_from_export_config(config: Option<crate::ExportConfig>) -> Option<SdkTracerProvider> {
    let mut config = config.unwrap_or_else(crate::ExportConfig::from_env);
    config.report_warnings();
    if config.mode() != crate::ExportMode::Otlp {
        return None;
    }
    match crate::build_tracer_provider(&config) {
        Ok(provider) => Some(provider),
        Err(error) => {
            crate::diagnostics::report!("span export disabled, logging stand-alone: {error}");
            None
        }
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
