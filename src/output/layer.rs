//! The event layer: formats each event straight into a reused per-thread
//! buffer and hands the whole line to the output's [`LineSink`].
//!
//! It replaces `fmt::Layer` in the builder's stack: no per-span
//! `FormattedFields` allocation (span fields are rendered once by the
//! correlation layer), one buffer instead of two, and a buffer that shrinks
//! back after a huge line.

use std::cell::RefCell;
use std::fmt;

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::Layer;

use super::filter::LogRecordGate;
use crate::ids::TraceIds;
use crate::sink::LineSink;
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

/// A buffer grown past this by one huge line is released after it, so a
/// thread that once logged 50 MB does not keep 50 MB.
const MAX_KEPT_CAPACITY: usize = 64 * 1024;

/// Formats events with `F` and writes them to one output.
pub(crate) struct OutputLayer<F> {
    format: F,
    sink: LineSink,
    /// On the first output only: found by the log bridge through
    /// `Dispatch::downcast_ref`.
    gate: Option<LogRecordGate>,
}

impl<F> fmt::Debug for OutputLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputLayer").finish_non_exhaustive()
    }
}

impl<F: LineFormat> OutputLayer<F> {
    pub(crate) fn new(format: F, sink: LineSink, gate: Option<LogRecordGate>) -> Self {
        Self { format, sink, gate }
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
        let (span, ids) =
            crate::format::span_and_ids(event, |id| ctx.span(id), || ctx.lookup_current());
        let reused = LINE.try_with(|line| {
            // Busy: an event logged while this thread formats or writes
            // another one (a field's `Debug` that logs); it gets a buffer of
            // its own.
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            self.write(&mut line, event, span.as_ref(), ids);
            if line.capacity() > MAX_KEPT_CAPACITY {
                *line = String::new();
            }
            true
        });
        if reused != Ok(true) {
            self.write(&mut String::new(), event, span.as_ref(), ids);
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
