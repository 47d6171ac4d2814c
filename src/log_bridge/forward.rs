//! [`LogBridge`]: `log` records forwarded into the `tracing` pipeline.

use std::cell::Cell;

use tracing_core::field::{FieldSet, Value};
use tracing_core::{Dispatch, Event, Level, LevelFilter, Metadata};

use super::callsite::{self, to_log_filter, to_tracing_level, BRIDGE_TARGET};
use super::staged::with_staged;

/// A `log::Log` that turns each record into a `tracing` event in the current
/// context, so a record logged inside a span carries that span's `trace_id`,
/// `span_id` and `trace_flags`, exactly like a `tracing` event at the same
/// place.
///
/// # What a forwarded line holds
///
/// With the [`JsonFormat`](crate::JsonFormat):
///
/// * `level`, `message`, the trace keys and the current span, as for any event;
/// * `target`: the record's own target (`log::info!(target: "db", …)`, or its
///   module path by default);
/// * `log.module_path`, `log.file`, `log.line`: where the record was logged,
///   each left out when the record does not know it, and `log.module_path`
///   also when it equals the target (as it does unless the record names a
///   target);
/// * the record's key-values (`log::info!(user_id = 7; "…")`) as fields,
///   escaped, after the fields above. A key already taken on the line
///   (`message`, `trace_id`, `level`, a repeated key…) is written as
///   `fields.<key>`, as for `tracing` fields. Values keep their JSON type
///   where they have one (numbers, booleans, strings, `null`); anything else
///   is written as its `Display` text.
///
/// The [`PrettyFormat`](crate::PrettyFormat) shows the record's target and
/// its key-values too. Other formatters see a `tracing` event with target
/// `log` and the fields `message`, `log.target`, `log.module_path`,
/// `log.file` and `log.line` (the names `tracing-log` uses); they do not see
/// the key-values.
///
/// # Filtering
///
/// A record is forwarded only if `tracing` would record an event of its level
/// and target: its level is checked against
/// `tracing::level_filters::LevelFilter::current()`, then the current
/// dispatcher's `enabled` is asked with the record's target, so `RUST_LOG`
/// directives such as `hyper=warn` apply to `log` records too. A disabled
/// record is not formatted at all. [`LogBridge::install`] also sets
/// `log::max_level` from the `tracing` filter, so the `log` macros skip
/// disabled records before building them.
///
/// # Re-entrancy
///
/// A `log` record emitted on a thread while that thread is already forwarding
/// a record (from a `Debug` impl, a writer, an exporter or a layer reached by
/// the forwarded event) is dropped: it can neither loop nor deadlock. A `log`
/// record emitted by a writer while it writes a `tracing` event is forwarded
/// once; if writing *that* logs again, the nested record is dropped.
///
/// ```
/// use tracing_correlation::{CorrelationLayer, JsonFormat, LogBridge};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(CorrelationLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(JsonFormat::new()));
/// tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
/// LogBridge::new().install().expect("no other log logger");
///
/// let _span = tracing::info_span!("request").entered();
/// log::info!(user_id = 7; "legacy code, same trace_id");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LogBridge {
    _private: (),
}

/// The instance [`LogBridge::install`] registers (`log` wants a `'static`).
static GLOBAL_BRIDGE: LogBridge = LogBridge { _private: () };

thread_local! {
    /// Set while this thread forwards a record.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as forwarding; `None` if it already is.
struct ForwardingGuard(());

impl ForwardingGuard {
    fn enter() -> Option<Self> {
        // Not `then_some(Self(()))`: that would build a guard and drop it,
        // clearing the flag of the outer forwarding.
        if FORWARDING.with(|flag| flag.replace(true)) {
            None
        } else {
            Some(Self(()))
        }
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        FORWARDING.with(|flag| flag.set(false));
    }
}

impl LogBridge {
    /// A bridge. It forwards into whichever dispatcher is current on the
    /// logging thread (the global one, or one set with
    /// `tracing::subscriber::set_default`).
    ///
    /// ```
    /// // To forward into a scoped subscriber, or to wrap it in your own `log::Log`.
    /// let bridge = tracing_correlation::LogBridge::new();
    /// assert!(!log::Log::enabled(&bridge, &log::Metadata::builder().build()), "no subscriber yet");
    /// ```
    #[must_use]
    pub fn new() -> Self {
        callsite::register_once();
        Self { _private: () }
    }

    /// Installs the bridge as the process' `log` logger and sets
    /// `log::max_level` from the current `tracing` filter (install the
    /// `tracing` subscriber first). [`init_json_logging`](crate::init_json_logging)
    /// does this for you.
    ///
    /// # Errors
    ///
    /// If a `log` logger is already installed; nothing changes then.
    ///
    /// ```
    /// tracing_correlation::LogBridge::new()
    ///     .install()
    ///     .expect("no other log logger installed");
    /// ```
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        Self::set_logger()?;
        Self::sync_max_level();
        Ok(())
    }

    /// Installs the global bridge without touching `log::max_level`.
    pub(crate) fn set_logger() -> Result<(), log::SetLoggerError> {
        callsite::register_once();
        log::set_logger(&GLOBAL_BRIDGE)
    }

    /// Whether the global bridge is the process' `log` logger.
    pub(crate) fn is_installed() -> bool {
        std::ptr::addr_eq(log::logger(), &GLOBAL_BRIDGE)
    }

    /// Sets `log::max_level` to the most verbose level `tracing` currently
    /// enables. Call it again after changing the `tracing` filter at run time
    /// (with a `reload` layer, say) to a more verbose level; a less verbose
    /// filter takes effect on `log` records without it.
    ///
    /// ```
    /// tracing_correlation::LogBridge::sync_max_level();
    /// ```
    pub fn sync_max_level() {
        log::set_max_level(to_log_filter(LevelFilter::current()));
    }

    /// The per-record metadata the dispatcher's `enabled` is asked about: the
    /// bridge's callsite, with the record's own target and location.
    fn record_metadata<'a>(
        level: Level,
        target: &'a str,
        record: Option<&'a log::Record<'a>>,
    ) -> Metadata<'a> {
        Metadata::new(
            "log record",
            target,
            level,
            record.and_then(log::Record::file),
            record.and_then(log::Record::line),
            record.and_then(log::Record::module_path),
            FieldSet::new(callsite::FIELD_NAMES, callsite::identifier(level)),
            tracing_core::metadata::Kind::EVENT,
        )
    }
}

/// The builder's exact answer for a record, where the subscriber has one
/// (see `LogRecordGate`); `None`: only the dispatcher can tell.
///
/// With per-layer filters `Dispatch::enabled` is too generous for a
/// record's own target, and asking it without dispatching an event after
/// leaves its per-layer verdicts behind for the next span or event on the
/// thread. So a record no output writes never reaches `Dispatch::enabled`.
fn gate(dispatch: &tracing::Dispatch, target: &str, level: Level) -> Option<bool> {
    dispatch
        .downcast_ref::<crate::output::filter::LogRecordGate>()
        .and_then(|gate| gate.decide(target, level))
}

/// Whether `tracing` records events at `level` at all (cheap: two loads).
fn level_enabled(level: Level) -> bool {
    level <= tracing::level_filters::STATIC_MAX_LEVEL && level <= LevelFilter::current()
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let level = to_tracing_level(metadata.level());
        level_enabled(level)
            && tracing::dispatcher::get_default(|dispatch| {
                gate(dispatch, metadata.target(), level).unwrap_or_else(|| {
                    dispatch.enabled(&Self::record_metadata(level, metadata.target(), None))
                })
            })
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = to_tracing_level(record.level());
        if !level_enabled(level) {
            return;
        }
        let Some(_forwarding) = ForwardingGuard::enter() else {
            return;
        };
        tracing::dispatcher::get_default(|dispatch| {
            if gate(dispatch, record.target(), level) != Some(false)
                && dispatch.enabled(&Self::record_metadata(level, record.target(), Some(record)))
            {
                with_staged(record, || dispatch_record(dispatch, level, record));
            }
        });
    }

    fn flush(&self) {}
}

/// Dispatches `record` as an event of the bridge's callsite for `level`.
fn dispatch_record(dispatch: &Dispatch, level: Level, record: &log::Record<'_>) {
    let meta = callsite::metadata(level);
    let fields = meta.fields();
    let mut names = fields.iter();
    let (Some(message), Some(target), Some(module_path), Some(file), Some(line)) = (
        names.next(),
        names.next(),
        names.next(),
        names.next(),
        names.next(),
    ) else {
        return;
    };
    let args = record.args();
    let target_value = record.target();
    let module_path_value = record.module_path();
    let file_value = record.file();
    let line_value = record.line().map(u64::from);
    let values: [(&_, Option<&dyn Value>); 5] = [
        (&message, Some(args)),
        (&target, Some(&target_value)),
        (
            &module_path,
            module_path_value.as_ref().map(|v| v as &dyn Value),
        ),
        (&file, file_value.as_ref().map(|v| v as &dyn Value)),
        (&line, line_value.as_ref().map(|v| v as &dyn Value)),
    ];
    debug_assert_eq!(meta.target(), BRIDGE_TARGET);
    dispatch.event(&Event::new(meta, &fields.value_set(&values)));
}
