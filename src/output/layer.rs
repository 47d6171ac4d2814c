//! The event layer: formats each event straight into a reused per-thread
//! buffer and hands the whole line to the output's [`LineSink`].
//!
//! It replaces `fmt::Layer` in the builder's stack: no per-span
//! `FormattedFields` allocation (span fields are rendered once by the
//! correlation layer), one buffer instead of two, and a buffer that shrinks
//! back after a huge line.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use tracing_core::field::Value;
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::{Layer, Registry};

use super::filter::{LogRecordGate, Swappable};
use crate::ids::TraceIds;
use crate::sink::{DropReport, LineSink};
use crate::{JsonFormat, PrettyFormat};

/// A line format the event layer can drive: JSON or pretty.
pub(crate) trait LineFormat: Send + Sync + 'static {
    /// Writes one whole line (ending in `\n`).
    fn write_line<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut String,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result;
}

/// The static callsites of the "lines dropped" report event (only WARN is
/// used).
mod report_event {
    pub(crate) const FIELDS: &[&str] = &["message", "dropped_lines"];

    crate::level_callsites::level_callsites!("lines dropped", "tracing_correlation", FIELDS);
}

/// An output's "N lines dropped" line rendered by its own `format`, as a
/// WARN event with the fields `message` and `dropped_lines`: the line has
/// the output's profile keys, level names and static fields.
pub(crate) fn drop_report<F: LineFormat>(format: F) -> DropReport {
    DropReport::Format(Arc::new(move |dropped, out| {
        write_count_line(
            &format,
            out,
            report_event::callsite(Level::WARN).0,
            format_args!("{dropped} {}", crate::sink::DROP_MESSAGE),
            dropped,
            None::<&SpanRef<'_, Registry>>,
            None,
        )
    }))
}

/// Writes, through `format`, a line of the crate's own: an event of `meta`
/// (whose two fields are a message and a count), the child of `span` when
/// there is one.
pub(crate) fn write_count_line<'a, F: LineFormat, R: LookupSpan<'a>>(
    format: &F,
    out: &mut String,
    meta: &'static tracing_core::Metadata<'static>,
    message: fmt::Arguments<'_>,
    count: u64,
    span: Option<&SpanRef<'a, R>>,
    ids: Option<TraceIds>,
) -> fmt::Result {
    let fields = meta.fields();
    let mut names = fields.iter();
    let (Some(message_field), Some(count_field)) = (names.next(), names.next()) else {
        return Err(fmt::Error);
    };
    let values = [
        (&message_field, Some(&message as &dyn Value)),
        (&count_field, Some(&count as &dyn Value)),
    ];
    let value_set = fields.value_set(&values);
    let event = match span {
        Some(span) => Event::new_child_of(span.id(), meta, &value_set),
        None => Event::new(meta, &value_set),
    };
    format.write_line(out, &event, span, ids)
}

impl<T: FormatTime + Send + Sync + 'static> LineFormat for JsonFormat<T> {
    fn write_line<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut String,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result {
        JsonFormat::write_line(self, out, event, span, ids)
    }
}

impl<T: FormatTime + Send + Sync + 'static> LineFormat for PrettyFormat<T> {
    fn write_line<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut String,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result {
        PrettyFormat::write_line(self, Writer::new(out), event, span, ids)
    }
}

thread_local! {
    /// The line being formatted on this thread, reused from line to line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Formats events with `F` and writes them to one output.
pub(crate) struct OutputLayer<F> {
    pub(super) format: F,
    pub(super) sink: LineSink,
    /// On the first output only: found by the log bridge through
    /// `Dispatch::downcast_ref`.
    gate: Option<LogRecordGate>,
    span_lines: SpanLines,
    /// This output's line filter, asked about each span's own metadata
    /// before a lifecycle line is written.
    lines: Option<Swappable>,
    /// Error-triggered buffering, when this output has it (`buffer.rs`).
    buffer: Option<super::buffer::BufferHook>,
    /// On the first output only: takes the OpenTelemetry SDK's warnings,
    /// which that output's filter lets through.
    sdk: Option<crate::export_health::SdkDiagnostics>,
}

impl<F> fmt::Debug for OutputLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputLayer").finish_non_exhaustive()
    }
}

impl<F: LineFormat> OutputLayer<F> {
    pub(crate) fn new(format: F, sink: LineSink, gate: Option<LogRecordGate>) -> Self {
        Self {
            format,
            sink,
            gate,
            span_lines: SpanLines::NONE,
            lines: None,
            buffer: None,
            sdk: None,
        }
    }

    /// Hands the SDK's own warnings to `sdk` (export health).
    pub(crate) fn with_sdk_diagnostics(
        mut self,
        sdk: Option<crate::export_health::SdkDiagnostics>,
    ) -> Self {
        self.sdk = sdk;
        self
    }

    /// Keeps the lines `buffer` captures until their trace fails.
    pub(crate) fn with_buffer(mut self, buffer: Option<super::buffer::BufferHook>) -> Self {
        self.buffer = buffer;
        self
    }

    /// Also writes span lifecycle lines, for spans `lines` enables.
    pub(crate) fn with_span_lines(mut self, span_lines: SpanLines, lines: Swappable) -> Self {
        self.span_lines = span_lines;
        self.lines = Some(lines);
        self
    }

    /// Writes one lifecycle line for `span`, through the same formatter.
    fn lifecycle_line<S>(&self, span: &SpanRef<'_, S>, message: &str, duration_us: Option<u64>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        use tracing_core::field::Value;
        let meta = lifecycle::metadata(*span.metadata().level());
        let fields = meta.fields();
        let mut names = fields.iter();
        let (Some(message_field), Some(duration_field)) = (names.next(), names.next()) else {
            return;
        };
        let message_value: &dyn Value = &tracing::field::display(message);
        let values = [
            (&message_field, Some(message_value)),
            (
                &duration_field,
                duration_us.as_ref().map(|d| d as &dyn Value),
            ),
        ];
        let value_set = fields.value_set(&values);
        let event = Event::new_child_of(span.id(), meta, &value_set);
        let ids = crate::layer::with_span_data(span, crate::layer::SpanData::ids).flatten();
        let mut line = String::new();
        self.write(&mut line, &event, Some(span), ids);
    }

    fn wants_span_line<S>(&self, span: &SpanRef<'_, S>, ctx: &Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.lines
            .as_ref()
            .is_some_and(|lines| lines.enables(span.metadata(), ctx))
    }

    fn write<'a, R: LookupSpan<'a>>(
        &self,
        out: &mut String,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) {
        out.clear();
        // A formatting error (a field's `Debug` failing) leaves a partial
        // line; it is not written, so no output ever holds half a JSON object.
        if self.format.write_line(out, event, span, ids).is_ok() {
            self.sink.write_line(out.as_bytes());
        }
    }
}

impl<S, F> Layer<S> for OutputLayer<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: LineFormat,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The OpenTelemetry SDK's own diagnostics are never a line (they
        // can be message-less, and may be emitted while its context stack
        // is borrowed); the export health reports its warnings.
        if crate::export_health::is_sdk_internal(event.metadata().target()) {
            if let Some(sdk) = &self.sdk {
                sdk.on_event(event);
            }
            return;
        }
        // Logged by a writer while it writes: dropped and counted, never
        // formatted (it would loop, or wait on itself).
        if crate::sink::in_writer() {
            self.sink.drop_writer_line();
            return;
        }
        let (span, ids) =
            crate::format::span_and_ids(event, |id| ctx.span(id), || ctx.lookup_current());
        if let Some(buffer) = &self.buffer {
            if let super::buffer::Route::Done = buffer.route(self, event, &ctx, span.as_ref(), ids)
            {
                return;
            }
        }
        let reused = LINE.try_with(|line| {
            // Busy: an event logged while this thread formats or writes
            // another one (a field's `Debug` that logs); it gets a buffer of
            // its own.
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            self.write(&mut line, event, span.as_ref(), ids);
            if line.capacity() > crate::format::json::MAX_KEPT_LINE_CAPACITY {
                *line = String::new();
            }
            true
        });
        if reused != Ok(true) {
            self.write(&mut String::new(), event, span.as_ref(), ids);
        }
    }

    // The span callbacks only check whether this output does anything with
    // spans, and leave the work to functions of their own: a body that
    // does it all sets up a large frame before its first test, on every
    // span of an output that does nothing with them (the usual one).
    fn on_new_span(
        &self,
        _attrs: &tracing_core::span::Attributes<'_>,
        id: &tracing_core::span::Id,
        ctx: Context<'_, S>,
    ) {
        if self.span_lines.any() {
            self.span_opened(id, &ctx);
        }
    }

    fn on_close(&self, id: tracing_core::span::Id, ctx: Context<'_, S>) {
        if self.buffer.is_some() || self.span_lines.closed {
            self.span_closed(&id, &ctx);
        }
    }

    // SAFETY: the returned pointer is derived from `&self.gate`'s content
    // and matches the `TypeId` asked for, so the caller's cast back to
    // `LogRecordGate` is valid for as long as the layer lives — the contract
    // of `Layer::downcast_raw`.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<LogRecordGate>() {
            self.gate
                .as_ref()
                .map(|gate| std::ptr::from_ref(gate).cast())
        } else if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            None
        }
    }
}

impl<F: LineFormat> OutputLayer<F> {
    #[inline(never)]
    fn span_opened<S>(&self, id: &tracing_core::span::Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if crate::sink::in_writer() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        if !self.wants_span_line(&span, ctx) {
            return;
        }
        if self.span_lines.closed {
            span.extensions_mut()
                .insert(OpenedAt(std::time::Instant::now()));
        }
        if self.span_lines.opened {
            self.lifecycle_line(&span, "span opened", None);
        }
    }

    #[inline(never)]
    fn span_closed<S>(&self, id: &tracing_core::span::Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let Some(buffer) = &self.buffer {
            if let Some(span) = ctx.span(id) {
                buffer.on_close(&span);
            }
        }
        if !self.span_lines.closed || crate::sink::in_writer() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let opened = span.extensions().get::<OpenedAt>().map(|o| o.0);
        if let Some(opened) = opened {
            let micros = u64::try_from(opened.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.lifecycle_line(&span, "span closed", Some(micros));
        }
    }
}

/// Which span lifecycle lines an output writes (none by default), like
/// `tracing_subscriber`'s `FmtSpan`: a line when a span is created, and
/// one when it closes with how long it lived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpanLines {
    opened: bool,
    closed: bool,
}

impl SpanLines {
    /// No lifecycle lines (the default).
    pub const NONE: Self = Self {
        opened: false,
        closed: false,
    };
    /// `"message":"span opened"` when a span is created.
    pub const OPENED: Self = Self {
        opened: true,
        closed: false,
    };
    /// `"message":"span closed"` with `span.duration_us` when it closes.
    pub const CLOSED: Self = Self {
        opened: false,
        closed: true,
    };
    /// Both.
    pub const ALL: Self = Self {
        opened: true,
        closed: true,
    };

    pub(crate) fn any(self) -> bool {
        self.opened || self.closed
    }
}

/// When a span was created, kept only when its close line is wanted.
struct OpenedAt(std::time::Instant);

/// The five static callsites (one per level) of lifecycle lines; never
/// dispatched: the output layer formats these events itself.
mod lifecycle {
    pub(super) const FIELDS: &[&str] = &["message", "span.duration_us"];

    crate::level_callsites::level_callsites!("span lifecycle", "tracing_correlation::span", FIELDS);

    pub(super) fn metadata(level: tracing_core::Level) -> &'static tracing_core::Metadata<'static> {
        callsite(level).0
    }
}
