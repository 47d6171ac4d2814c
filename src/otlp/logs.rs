//! OTLP log records: each event that passes the output's filter becomes one
//! OpenTelemetry `LogRecord`, with the same trace ids as its JSON line.
//!
//! The event layer ([`OtlpLogLayer`]) converts on the emitting thread and
//! hands the record to the SDK's batch log processor (a bounded queue read
//! by its own thread, `OTEL_BLRP_*`); the exporter sends batches over gRPC
//! or HTTP/protobuf on the private export runtime, counted like spans.
//!
//! What a record holds:
//!
//! | OTel field | from |
//! |---|---|
//! | `time_unix_nano`, `observed_time_unix_nano` | the moment the event was logged |
//! | `severity_number`, `severity_text` | `TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17 |
//! | `body` | the `message` field (a string) |
//! | attributes | every other field with its type: `i64` (and unsigned or 128-bit integers that fit) as int, `f64` as double, `bool`, strings; `Debug`/`Display` values as their text |
//! | `exception.message` | the `Display` text of an error value (`error = &err as &dyn Error`) |
//! | `code.file.path`, `code.line.number` | the callsite, when known |
//! | instrumentation scope | name = the event's target (the logger name, as the OpenTelemetry appenders do), version = this crate's |
//! | `trace_id`, `span_id`, `flags` | the ids the JSON line carries, read the same way, in both id modes |

use std::cell::Cell;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{InstrumentationScope, Key};
use opentelemetry_otlp::{Protocol, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::config::{ExportConfig, OtlpProtocol};
use super::error::OtlpError;
use super::provider::{build_resource, with_common, ExportRuntime};
use crate::export_health::{HealthCounters, SignalCounters};

thread_local! {
    /// Set on the threads that run exports: what they log (hyper, tonic)
    /// is never itself exported as a log record, which could loop.
    static EXPORTING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as an export thread for its whole life.
pub(crate) fn mark_export_thread() {
    let _ = EXPORTING.try_with(|exporting| exporting.set(true));
}

fn on_export_thread() -> bool {
    EXPORTING.try_with(Cell::get).unwrap_or(true)
}

/// Marks the calling thread as exporting until dropped.
struct Exporting(bool);

impl Exporting {
    fn enter() -> Self {
        Self(EXPORTING.try_with(|e| e.replace(true)).unwrap_or(true))
    }
}

impl Drop for Exporting {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = EXPORTING.try_with(|e| e.set(previous));
    }
}

/// The OTLP log output: which events become log records. Added with
/// [`Builder::otlp_logs`](crate::Builder::otlp_logs); without it, setting
/// `OTEL_LOGS_EXPORTER=otlp` adds one that follows `RUST_LOG`.
///
/// ```
/// let logs = tracing_correlation::OtlpLogs::new().filter("warn,my_crate=info");
/// # drop(logs);
/// ```
#[derive(Clone, Debug, Default)]
pub struct OtlpLogs {
    pub(crate) filter: Option<String>,
}

impl OtlpLogs {
    /// Every event `RUST_LOG` enables (`info` when unset).
    ///
    /// ```
    /// let _logs = tracing_correlation::OtlpLogs::new();
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Which events are exported (`RUST_LOG` syntax), independently of the
    /// other outputs' filters.
    ///
    /// ```
    /// let _logs = tracing_correlation::OtlpLogs::new().filter("error");
    /// ```
    #[must_use]
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }
}

/// Builds the logger provider that exports log records as `config` says:
/// the batch log processor (`OTEL_BLRP_*`), the resource of the spans
/// (with the same `service.instance.id`), and the gRPC or HTTP exporter.
pub(crate) fn build_logger_provider(
    config: &ExportConfig,
    health: &HealthCounters,
) -> Result<SdkLoggerProvider, OtlpError> {
    let runtime = ExportRuntime::start()?;
    let exporter = build_log_exporter(config, &runtime)?;
    let exporter = RuntimeBoundLogExporter {
        inner: exporter,
        runtime,
        counters: Arc::clone(&health.logs),
    };
    Ok(SdkLoggerProvider::builder()
        .with_log_processor(BatchLogProcessor::builder(exporter).build())
        .with_resource(build_resource(config))
        .build())
}

fn build_log_exporter(
    config: &ExportConfig,
    runtime: &ExportRuntime,
) -> Result<opentelemetry_otlp::LogExporter, OtlpError> {
    let protocol = config.logs_protocol();
    let endpoint = config.logs_endpoint();
    let compression = config.logs_compression().to_otlp();
    let _entered = runtime.handle().map(tokio::runtime::Handle::enter);
    let builder = opentelemetry_otlp::LogExporter::builder();
    let built = match protocol {
        OtlpProtocol::Grpc => {
            let builder = with_common(builder.with_tonic(), Protocol::Grpc, &endpoint, config);
            match compression {
                Some(compression) => builder.with_compression(compression),
                None => builder,
            }
            .build()
        }
        OtlpProtocol::HttpProtobuf => {
            let builder = with_common(builder.with_http(), Protocol::HttpBinary, &endpoint, config);
            match compression {
                Some(compression) => builder.with_compression(compression),
                None => builder,
            }
            .build()
        }
    };
    built.map_err(|source| OtlpError::Exporter {
        protocol,
        endpoint,
        source,
    })
}

/// Runs each export on the [`ExportRuntime`] from the batch processor's own
/// thread (a log batch borrows the processor's records, so it cannot be
/// spawned: the thread blocks on it instead, marked as exporting).
#[derive(Debug)]
struct RuntimeBoundLogExporter {
    // Declared before `runtime` so that the exporter is dropped first.
    inner: opentelemetry_otlp::LogExporter,
    runtime: ExportRuntime,
    counters: Arc<SignalCounters>,
}

impl LogExporter for RuntimeBoundLogExporter {
    fn export(
        &self,
        batch: LogBatch<'_>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let items = batch.iter().count() as u64;
        let result = match self.runtime.handle() {
            // Not inside a tokio runtime: the batch processor's thread.
            Some(handle) if tokio::runtime::Handle::try_current().is_err() => {
                let _exporting = Exporting::enter();
                handle.block_on(self.inner.export(batch))
            }
            Some(_) => Err(OTelSdkError::InternalFailure(
                "OTLP log export must run on the batch processor's thread".to_owned(),
            )),
            None => Err(OTelSdkError::AlreadyShutdown),
        };
        self.counters.record(items, result.as_ref().copied());
        std::future::ready(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Shuts `provider` down (exporting what is queued), waiting at most
/// `timeout`; a failure is reported once.
pub(crate) fn shutdown_logger_provider(provider: &SdkLoggerProvider, timeout: Duration) {
    let provider = provider.clone();
    let (sender, receiver) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("tracing-correlation-otlp-logs-shutdown".to_owned())
        .spawn(move || {
            let flushed = provider.force_flush();
            let shut_down = provider.shutdown_with_timeout(timeout);
            let _ = sender.send(flushed.and(shut_down));
        });
    if spawned.is_err() {
        crate::diagnostics::report!("could not start the OTLP log shutdown thread");
        return;
    }
    match receiver.recv_timeout(timeout) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => crate::diagnostics::report!("the final OTLP log export failed ({error})"),
        Err(_) => crate::diagnostics::report!(
            "OTLP log shutdown did not finish within {timeout:?}: the collector is unreachable or slow"
        ),
    }
}

/// The event layer of the OTLP log output.
pub(crate) struct OtlpLogLayer {
    logger: SdkLogger,
}

impl fmt::Debug for OtlpLogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpLogLayer").finish_non_exhaustive()
    }
}

impl OtlpLogLayer {
    pub(crate) fn new(provider: &SdkLoggerProvider) -> Self {
        let scope = InstrumentationScope::builder(crate::otel_layer::SCOPE_NAME)
            .with_version(crate::otel_layer::SCOPE_VERSION)
            .build();
        Self {
            logger: provider.logger_with_scope(scope),
        }
    }
}

fn severity(level: Level) -> (Severity, &'static str) {
    match level {
        Level::TRACE => (Severity::Trace, "TRACE"),
        Level::DEBUG => (Severity::Debug, "DEBUG"),
        Level::INFO => (Severity::Info, "INFO"),
        Level::WARN => (Severity::Warn, "WARN"),
        Level::ERROR => (Severity::Error, "ERROR"),
    }
}

impl<S> Layer<S> for OtlpLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if on_export_thread() || crate::sink::in_writer() {
            return;
        }
        let (_, ids) =
            crate::format::span_and_ids(event, |id| ctx.span(id), || ctx.lookup_current());
        let metadata = event.metadata();
        let now = SystemTime::now();
        let mut record = self.logger.create_log_record();
        record.set_timestamp(now);
        record.set_observed_timestamp(now);
        let (number, text) = severity(*metadata.level());
        record.set_severity_number(number);
        record.set_severity_text(text);
        record.set_target(metadata.target());
        if let Some(ids) = ids {
            record.set_trace_context(ids.trace_id(), ids.span_id(), Some(ids.trace_flags()));
        }
        event.record(&mut RecordFields {
            record: &mut record,
            exception: false,
        });
        if let Some(file) = metadata.file() {
            record.add_attribute(Key::from_static_str("code.file.path"), file);
        }
        if let Some(line) = metadata.line() {
            record.add_attribute(Key::from_static_str("code.line.number"), i64::from(line));
        }
        self.logger.emit(record);
    }
}

/// Moves an event's fields into a log record, types kept.
struct RecordFields<'r> {
    record: &'r mut SdkLogRecord,
    exception: bool,
}

impl RecordFields<'_> {
    fn add(&mut self, field: &Field, value: AnyValue) {
        self.record
            .add_attribute(Key::from_static_str(field.name()), value);
    }
}

impl Visit for RecordFields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, AnyValue::Boolean(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, AnyValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.add(field, AnyValue::Int(value)),
            Err(_) => self.add(field, AnyValue::String(value.to_string().into())),
        }
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(value) => self.add(field, AnyValue::Int(value)),
            Err(_) => self.add(field, AnyValue::String(value.to_string().into())),
        }
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        match i64::try_from(value) {
            Ok(value) => self.add(field, AnyValue::Int(value)),
            Err(_) => self.add(field, AnyValue::String(value.to_string().into())),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.add(field, AnyValue::Double(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = AnyValue::String(value.to_owned().into());
        if field.name() == "message" {
            self.record.set_body(value);
        } else {
            self.add(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let mut text = value.to_string();
        if !self.exception {
            self.exception = true;
            self.record.add_attribute(
                Key::from_static_str("exception.message"),
                AnyValue::String(text.clone().into()),
            );
        }
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.add(field, AnyValue::String(text.into()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        let value = AnyValue::String(text.into());
        if field.name() == "message" {
            self.record.set_body(value);
        } else {
            self.add(field, value);
        }
    }
}
