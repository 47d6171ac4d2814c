//! Export health: what each exported signal did (counters the guard reads),
//! one report when exports start failing and one when they recover, and the
//! OpenTelemetry SDK's own diagnostics kept out of the outputs.
//!
//! The SDK speaks about itself through `tracing` events whose target is its
//! crate name (`opentelemetry_sdk`, `opentelemetry-otlp`…), most without a
//! `message`. Written as lines they are noise; exported as OTLP log records
//! they would be telemetry about telemetry, possibly without end. So every
//! output layer drops them (and the OTLP log layer's filter excludes them,
//! `NotSdkInternal`), and [`SdkDiagnostics`] turns the
//! ones that matter into counts and single reports on stderr.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing_core::field::{Field, Visit};
#[cfg(feature = "otlp")]
use tracing_core::{subscriber::Interest, LevelFilter};
use tracing_core::{Event, Level, Metadata};
#[cfg(feature = "otlp")]
use tracing_subscriber::layer::{Context, Filter};

/// What one signal's exporter did since the guard was created.
///
/// ```
/// let health = tracing_correlation::SignalHealth::default();
/// assert_eq!((health.exported, health.failed, health.dropped, health.failing), (0, 0, 0, false));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalHealth {
    /// Items (spans, log records) the collector accepted.
    pub exported: u64,
    /// Items in export requests that failed (unreachable collector,
    /// refusal, time-out); they are lost, the SDK does not retry them.
    pub failed: u64,
    /// Items the batch processor refused because its queue was full (raise
    /// `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE`). The SDK says
    /// only *that* it dropped while running, so this is at least 1 then, and
    /// the exact total once the processor has shut down.
    pub dropped: u64,
    /// Whether the last export failed.
    pub failing: bool,
}

/// What each exported signal did, from
/// [`LoggingGuard::export_health`](crate::LoggingGuard::export_health). All
/// zero for a signal that is not exported.
///
/// ```
/// let (dispatch, guard) = tracing_correlation::builder()
///     .writer(std::io::sink)
///     .build()
///     .expect("valid configuration");
/// # drop(dispatch);
/// let health = guard.export_health();
/// assert_eq!(health.traces.exported, 0); // nothing is exported stand-alone
/// assert!(!health.logs.failing);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportHealth {
    /// Spans.
    pub traces: SignalHealth,
    /// OTLP log records.
    pub logs: SignalHealth,
}

/// The live counters of one signal, shared by its exporter and the guard.
#[derive(Debug)]
#[cfg_attr(not(feature = "otlp"), allow(dead_code))] // only OTLP exporters count
pub(crate) struct SignalCounters {
    signal: &'static str,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    failing: AtomicBool,
}

impl SignalCounters {
    fn new(signal: &'static str) -> Self {
        Self {
            signal,
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// Counts one export of `items`; the first failure after success (or
    /// after start) and the first success after failure are reported once.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) fn record<E: fmt::Display>(&self, items: u64, result: Result<(), &E>) {
        match result {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::AcqRel) {
                    report_line(
                        "INFO",
                        &format!("{} export recovered", self.signal),
                        self.signal,
                        &[("exported", &items.to_string())],
                    );
                }
            }
            Err(error) => {
                self.failed.fetch_add(items, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::AcqRel) {
                    report_line(
                        "ERROR",
                        &format!(
                            "{} export failed; later failures are not reported until an export succeeds",
                            self.signal
                        ),
                        self.signal,
                        &[("error", &error.to_string()), ("lost", &items.to_string())],
                    );
                }
            }
        }
    }

    fn dropped_at_least(&self, count: u64) {
        self.dropped.fetch_max(count, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SignalHealth {
        SignalHealth {
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failing: self.failing.load(Ordering::Acquire),
        }
    }
}

/// Both signals' counters; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct HealthCounters {
    pub(crate) traces: Arc<SignalCounters>,
    pub(crate) logs: Arc<SignalCounters>,
}

impl Default for HealthCounters {
    fn default() -> Self {
        Self {
            traces: Arc::new(SignalCounters::new("span")),
            logs: Arc::new(SignalCounters::new("log")),
        }
    }
}

impl HealthCounters {
    pub(crate) fn snapshot(&self) -> ExportHealth {
        ExportHealth {
            traces: self.traces.snapshot(),
            logs: self.logs.snapshot(),
        }
    }
}

/// One structured diagnostic: `tracing-correlation: {"level":…,"message":…,…}`.
fn report_line(level: &str, message: &str, signal: &str, fields: &[(&str, &str)]) {
    let mut line = String::with_capacity(128);
    let _ = write!(
        line,
        "{{\"level\":\"{level}\",\"message\":{},\"signal\":{}",
        json_string(message),
        json_string(signal)
    );
    for (key, value) in fields {
        let _ = write!(line, ",{}:{}", json_string(key), json_string(value));
    }
    line.push('}');
    crate::diagnostics::report!("{line}");
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Whether `target` is one of the OpenTelemetry crates' own (`opentelemetry`,
/// `opentelemetry_sdk`, `opentelemetry-otlp`, `opentelemetry-http`…).
pub(crate) fn is_sdk_internal(target: &str) -> bool {
    target
        .strip_prefix("opentelemetry")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['_', '-', ':']))
}

/// A per-layer filter that lets through everything but the SDK's own
/// events; decided once per callsite (the OTLP log layer's).
#[cfg(feature = "otlp")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotSdkInternal;

#[cfg(feature = "otlp")]
impl<S> Filter<S> for NotSdkInternal {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !is_sdk_internal(metadata.target())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_sdk_internal(metadata.target()) {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // Combined with `and`, the other filter's hint stays the answer.
        Some(LevelFilter::TRACE)
    }
}

/// Sees only the SDK's own warnings and errors: drops become counts, export
/// errors are left to the counting exporters (which report them once),
/// anything else is reported once per event name.
#[derive(Debug)]
pub(crate) struct SdkDiagnostics {
    counters: HealthCounters,
    reported: Mutex<HashSet<String>>,
}

impl SdkDiagnostics {
    pub(crate) fn new(counters: HealthCounters) -> Self {
        Self {
            counters,
            reported: Mutex::new(HashSet::new()),
        }
    }
}

/// The fields of an SDK event that matter here.
#[derive(Default)]
struct SdkEvent {
    name: String,
    message: String,
    detail: String,
    dropped: Option<u64>,
}

impl Visit for SdkEvent {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name().starts_with("dropped_") {
            self.dropped = Some(value);
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name().starts_with("dropped_") {
            self.dropped = u64::try_from(value).ok();
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "name" => value.clone_into(&mut self.name),
            "message" => value.clone_into(&mut self.message),
            "error" | "reason" => value.clone_into(&mut self.detail),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "name" => format!("{value:?}")
                .trim_matches('"')
                .clone_into(&mut self.name),
            "message" => self.message = format!("{value:?}"),
            "error" | "reason" => self.detail = format!("{value:?}"),
            _ => {}
        }
    }
}

/// The first output layer hands it the SDK's own events (it already tells
/// them apart, to keep them off its lines); it keeps the warnings only.
impl SdkDiagnostics {
    pub(crate) fn on_event(&self, event: &Event<'_>) {
        if !is_sdk_warning(event.metadata()) {
            return;
        }
        let mut fields = SdkEvent::default();
        event.record(&mut fields);
        if fields.name.is_empty() {
            event.metadata().name().clone_into(&mut fields.name);
        }
        let name = fields.name.as_str();
        if name.contains("Dropping") || name.ends_with("Dropped") {
            let signal = if name.contains("Log") {
                &self.counters.logs
            } else {
                &self.counters.traces
            };
            signal.dropped_at_least(fields.dropped.unwrap_or(1));
            return;
        }
        if name.ends_with("ExportError") {
            return; // counted and reported by the exporter wrappers
        }
        let first = self
            .reported
            .lock()
            .is_ok_and(|mut seen| seen.insert(fields.name.clone()));
        if first {
            let message = if fields.message.is_empty() {
                format!("OpenTelemetry SDK: {}", fields.name)
            } else {
                format!("OpenTelemetry SDK: {}", fields.message)
            };
            let level = *event.metadata().level();
            report_line(
                if level == Level::ERROR {
                    "ERROR"
                } else {
                    "WARN"
                },
                &message,
                event.metadata().target(),
                &[("name", &fields.name), ("detail", &fields.detail)],
            );
        }
    }
}

/// Whether `metadata` is one of the SDK's own warnings or errors, the
/// events [`SdkDiagnostics`] handles (the first output's filter lets them
/// through whatever its directives say).
pub(crate) fn is_sdk_warning(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && *metadata.level() <= Level::WARN && is_sdk_internal(metadata.target())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_targets_are_recognised_by_crate_name_only() {
        for target in [
            "opentelemetry",
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "opentelemetry::global",
        ] {
            assert!(is_sdk_internal(target), "{target}");
        }
        for target in [
            "opentelemetryx",
            "app",
            "my_opentelemetry",
            "tracing_correlation",
        ] {
            assert!(!is_sdk_internal(target), "{target}");
        }
    }

    #[test]
    fn a_report_is_one_json_object_with_a_message() {
        let mut line = String::new();
        let _ = write!(
            line,
            "{{\"message\":{}}}",
            json_string("quote \" and\nnewline")
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["message"], "quote \" and\nnewline");
    }

    #[test]
    fn counters_count_and_remember_the_failing_state() {
        let counters = SignalCounters::new("span");
        counters.record(3, Err(&"connection refused"));
        counters.record(2, Err(&"connection refused"));
        assert_eq!(
            counters.snapshot(),
            SignalHealth {
                exported: 0,
                failed: 5,
                dropped: 0,
                failing: true
            }
        );
        counters.record::<&str>(4, Ok(()));
        counters.dropped_at_least(1);
        counters.dropped_at_least(7);
        counters.dropped_at_least(2);
        assert_eq!(
            counters.snapshot(),
            SignalHealth {
                exported: 4,
                failed: 5,
                dropped: 7,
                failing: false
            }
        );
    }
}
