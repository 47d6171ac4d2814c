//! Building the exporting `SdkTracerProvider` and shutting it down within a bound.

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use super::config::{ExportConfig, ExportMode, OtlpProtocol};
use super::error::OtlpError;
use crate::export_health::{HealthCounters, SignalCounters};

const RUNTIME_THREAD_NAME: &str = "tracing-correlation-otlp";
const SHUTDOWN_THREAD_NAME: &str = "tracing-correlation-otlp-shutdown";

/// Builds a tracer provider that exports over OTLP as `config` says: a batch
/// span processor, the configured sampler and resource, and the gRPC or
/// HTTP/protobuf exporter.
///
/// The batch processor reads `OTEL_BSP_*` from the process environment, and the
/// exporter reads `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`, `_TIMEOUT` (unless
/// [`ExportConfig::with_export_timeout`] is used), `_COMPRESSION` and
/// `_INSECURE`, exactly as `opentelemetry_sdk` and `opentelemetry-otlp` do.
///
/// The exporter's network I/O runs on a private one-worker tokio runtime, so the
/// provider works the same with no runtime, inside any tokio runtime (including
/// `current_thread`), and after the application's runtime has shut down.
///
/// Shut the provider down with [`shutdown_with_timeout`] so that buffered spans
/// are sent without blocking for long when the collector is unreachable. If the
/// last clone is merely dropped, the SDK shuts it down itself and may block the
/// dropping thread for up to 5 seconds.
///
/// # Errors
///
/// [`OtlpError::ExportNotRequested`] when the configuration is stand-alone,
/// [`OtlpError::Exporter`] when the endpoint or other exporter settings are
/// invalid, [`OtlpError::Runtime`] when the I/O thread cannot be started.
///
/// ```
/// use opentelemetry::trace::TracerProvider as _;
/// use tracing_correlation::{build_tracer_provider, shutdown_with_timeout, ExportConfig, ExportMode};
/// use std::time::Duration;
///
/// let config = ExportConfig::from_lookup(|_| None)
///     .with_mode(ExportMode::Otlp)
///     .with_endpoint("http://127.0.0.1:9/v1/traces");
/// let provider = build_tracer_provider(&config)?;
/// let _tracer = provider.tracer("my-service");
/// // Nothing was recorded, so shutdown has nothing to send.
/// shutdown_with_timeout(&provider, Duration::from_secs(1))?;
/// # Ok::<(), tracing_correlation::OtlpError>(())
/// ```
pub fn build_tracer_provider(config: &ExportConfig) -> Result<SdkTracerProvider, OtlpError> {
    build_counted_tracer_provider(config, &HealthCounters::default())
}

/// [`build_tracer_provider`], counting exports (and reporting failure and
/// recovery) in `health`.
pub(crate) fn build_counted_tracer_provider(
    config: &ExportConfig,
    health: &HealthCounters,
) -> Result<SdkTracerProvider, OtlpError> {
    if config.mode() != ExportMode::Otlp {
        return Err(OtlpError::ExportNotRequested);
    }
    let runtime = ExportRuntime::start()?;
    let exporter = build_exporter(config, &runtime)?;
    let exporter = RuntimeBoundExporter {
        inner: Arc::new(exporter),
        runtime: Arc::new(runtime),
        counters: Arc::clone(&health.traces),
    };
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_sampler(config.sampler().to_sampler())
        .with_resource(build_resource(config))
        .build())
}

/// Shuts `provider` down, exporting what is buffered, and returns within
/// `timeout` whatever the collector does.
///
/// The SDK's flush and shutdown run on a helper thread; if they have not
/// finished when `timeout` elapses, this returns [`OtlpError::ShutdownTimedOut`] and the helper finishes
/// (or gives up) in the background. It is safe to call from inside an async
/// context, though it blocks the calling thread for up to `timeout`.
///
/// # Errors
///
/// One error describes the whole failure, for the caller to report once:
/// [`OtlpError::ShutdownTimedOut`] or [`OtlpError::ExportFailed`] when the
/// collector is unreachable, slow or refuses the data;
/// [`OtlpError::AlreadyShutDown`] on a second call;
/// [`OtlpError::ShutdownThread`] when no helper thread can be started.
///
/// ```
/// use std::time::Duration;
/// use tracing_correlation::{shutdown_with_timeout, OtlpError};
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// shutdown_with_timeout(&provider, Duration::from_millis(200))?;
/// assert!(matches!(
///     shutdown_with_timeout(&provider, Duration::from_millis(200)),
///     Err(OtlpError::AlreadyShutDown)
/// ));
/// # Ok::<(), OtlpError>(())
/// ```
pub fn shutdown_with_timeout(
    provider: &SdkTracerProvider,
    timeout: Duration,
) -> Result<(), OtlpError> {
    let started = Instant::now();
    let provider = provider.clone();
    let (sender, receiver) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(SHUTDOWN_THREAD_NAME.to_owned())
        .spawn(move || {
            // The SDK 0.33 batch processor drops the final export's result on
            // shutdown but returns it from force_flush: flush first so that an
            // unreachable collector is reported, then shut down what is left.
            let flushed = provider.force_flush();
            let shut_down =
                provider.shutdown_with_timeout(timeout.saturating_sub(started.elapsed()));
            // The receiver is gone when the caller stopped waiting: nothing to do.
            let _ = sender.send((flushed, shut_down));
        })
        .map_err(OtlpError::ShutdownThread)?;

    let timed_out = Err(OtlpError::ShutdownTimedOut { timeout });
    match receiver.recv_timeout(timeout) {
        Ok((_, Err(OTelSdkError::AlreadyShutdown))) => Err(OtlpError::AlreadyShutDown),
        Ok((_, Err(OTelSdkError::Timeout(_)))) | Err(mpsc::RecvTimeoutError::Timeout) => timed_out,
        // The provider folds its processors' errors into one message; the batch
        // processor's own time-out is recognisable only by the time spent.
        Ok((Err(_), _) | (_, Err(_))) if started.elapsed() >= timeout => timed_out,
        Ok((Err(error), _) | (Ok(()), Err(error))) => {
            Err(OtlpError::ExportFailed(error.to_string()))
        }
        Ok((Ok(()), Ok(()))) => Ok(()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(OtlpError::ExportFailed(
            "the shutdown thread ended without a result".to_owned(),
        )),
    }
}

fn build_exporter(
    config: &ExportConfig,
    runtime: &ExportRuntime,
) -> Result<opentelemetry_otlp::SpanExporter, OtlpError> {
    let protocol = config.protocol();
    let endpoint = config.endpoint();
    // tonic spawns its connection worker while the exporter is built, so this
    // must happen inside the runtime that will drive it.
    let _entered = runtime.handle().map(tokio::runtime::Handle::enter);
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let built = match protocol {
        OtlpProtocol::Grpc => {
            let builder = with_common(builder.with_tonic(), Protocol::Grpc, &endpoint, config);
            match config.compression().to_otlp() {
                Some(compression) => builder.with_compression(compression),
                None => builder,
            }
            .build()
        }
        OtlpProtocol::HttpProtobuf => {
            let builder = with_common(builder.with_http(), Protocol::HttpBinary, &endpoint, config);
            match config.compression().to_otlp() {
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

/// What an exporter of either signal is given whatever its transport: the
/// protocol, the endpoint and the export timeout.
pub(super) fn with_common<B: WithExportConfig>(
    builder: B,
    protocol: Protocol,
    endpoint: &str,
    config: &ExportConfig,
) -> B {
    let builder = builder.with_protocol(protocol).with_endpoint(endpoint);
    match config.export_timeout() {
        Some(timeout) => builder.with_timeout(timeout),
        None => builder,
    }
}

pub(crate) fn build_resource(config: &ExportConfig) -> Resource {
    // `Resource::builder()` would read OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    // from the process environment behind the lookup's back; start empty instead.
    let instance = config
        .resource_attributes()
        .iter()
        .all(|(key, _)| key != SERVICE_INSTANCE_ID)
        .then(|| KeyValue::new(SERVICE_INSTANCE_ID, instance_id().to_owned()));
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            config
                .resource_attributes()
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
                .chain(instance),
        )
        .with_service_name(config.service_name().to_owned())
        .build()
}

const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// This process' `service.instance.id`: a random (version 4) UUID, made
/// once, so that every provider of the process (spans, logs) names the same
/// instance.
pub(crate) fn instance_id() -> &'static str {
    static INSTANCE_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INSTANCE_ID.get_or_init(|| {
        let high = u64::from_be_bytes(crate::ids::new_span_id().to_bytes());
        let low = u64::from_be_bytes(crate::ids::new_span_id().to_bytes());
        let bits = (u128::from(high) << 64 | u128::from(low))
            & !(0xf000_u128 << 64 | 0xc000_u128 << 48)
            | (0x4000_u128 << 64 | 0x8000_u128 << 48);
        let hex = format!("{bits:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    })
}

/// A one-worker tokio runtime owned by the exporter; it never blocks when dropped.
#[derive(Debug)]
pub(crate) struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    pub(crate) fn start() -> Result<Self, OtlpError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name(RUNTIME_THREAD_NAME)
            .on_thread_start(super::logs::mark_export_thread)
            .enable_io()
            .enable_time()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(OtlpError::Runtime)
    }

    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // A plain drop waits for the worker and panics inside an async context;
        // the exporter may be dropped on any thread.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs every export of the wrapped OTLP exporter on the [`ExportRuntime`], so
/// that the batch processor's own thread (which polls with a plain executor)
/// never needs an ambient tokio runtime.
#[derive(Debug)]
struct RuntimeBoundExporter {
    // Declared before `runtime` so that the exporter is dropped first.
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: Arc<ExportRuntime>,
    counters: Arc<SignalCounters>,
}

impl SpanExporter for RuntimeBoundExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let counters = Arc::clone(&self.counters);
        let items = batch.len() as u64;
        let task = self
            .runtime
            .handle()
            .map(|handle| handle.spawn(async move { inner.export(batch).await }));
        async move {
            let result = match task {
                Some(task) => task.await.unwrap_or_else(|error| {
                    Err(OTelSdkError::InternalFailure(format!(
                        "the OTLP export task failed: {error}"
                    )))
                }),
                None => Err(OTelSdkError::AlreadyShutdown),
            };
            counters.record(items, result.as_ref().copied());
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // The batch processor calls this between exports, when no export task
        // holds a clone, so the exporter is not shared.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_one_version_4_uuid_per_process() {
        let id = instance_id();
        assert_eq!(id.len(), 36);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
        assert_eq!(instance_id(), id);
    }

    #[test]
    fn the_resource_gets_an_instance_id_unless_one_is_configured() {
        let value = |config: &ExportConfig| {
            build_resource(config)
                .get(&opentelemetry::Key::new(SERVICE_INSTANCE_ID))
                .map(|value| value.to_string())
        };
        let generated = ExportConfig::from_lookup(|_| None);
        assert_eq!(value(&generated).as_deref(), Some(instance_id()));
        let configured = ExportConfig::from_lookup(|name| {
            (name == "OTEL_RESOURCE_ATTRIBUTES").then(|| "service.instance.id=pod-7".to_owned())
        });
        assert_eq!(value(&configured).as_deref(), Some("pod-7"));
    }
}
