//! A human-readable format with the trace context, for local development.

use std::fmt::{self, Write};

use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::ids::TraceIds;

use super::fields::MAX_ERROR_SOURCES;
use super::time::Rfc3339Micros;

/// One readable line per event:
///
/// ```text
/// 2026-11-21T19:01:14.123456Z  INFO request:db: app::db: query done rows=3 trace_id=4bf9…4736 span_id=00f0…02b7
/// ```
///
/// Control characters in messages and values are escaped, so a hostile value
/// cannot forge extra lines. Choose it with
/// [`Builder::format`](crate::Builder::format) or `LOG_FORMAT=pretty`.
///
/// ```
/// use tracing_correlation::{CorrelationLayer, PrettyFormat};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(CorrelationLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(PrettyFormat::new()));
/// # drop(subscriber);
/// ```
///
/// Profiles and static fields are JSON matters: a pretty line always uses
/// these names and carries no static fields (they are the same on every line
/// a developer reads). A `dyn Error` field is followed by
/// `<name>.chain=[…]`, its sources (at most 8).
#[derive(Debug, Clone, Default)]
pub struct PrettyFormat<T = Rfc3339Micros> {
    timer: T,
    parent_span_id: bool,
}

impl PrettyFormat {
    /// The default: RFC 3339 UTC timestamps.
    #[must_use]
    pub fn new() -> Self {
        Self {
            timer: Rfc3339Micros,
            parent_span_id: false,
        }
    }
}

impl<T> PrettyFormat<T> {
    /// Uses another timer.
    #[must_use]
    pub fn with_timer<T2>(self, timer: T2) -> PrettyFormat<T2> {
        PrettyFormat {
            timer,
            parent_span_id: self.parent_span_id,
        }
    }

    /// Whether to end lines with ` parent_span_id=…`, the id of the parent
    /// of the line's span (off by default; same rules as
    /// [`JsonFormat::with_parent_span_id`](crate::JsonFormat::with_parent_span_id)).
    ///
    /// ```
    /// let format = tracing_correlation::PrettyFormat::new().with_parent_span_id(true);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_parent_span_id(mut self, on: bool) -> Self {
        self.parent_span_id = on;
        self
    }
}

impl<S, N, T> FormatEvent<S, N> for PrettyFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (span, ids) = super::event_span_and_ids(ctx, event);
        self.write_line(writer, event, span.as_ref(), ids)
    }
}

impl<T: FormatTime> PrettyFormat<T> {
    /// Writes one whole line (ending in `\n`) for `event`, which belongs to
    /// `span` and carries `ids`.
    pub(crate) fn write_line<'a, R: LookupSpan<'a>>(
        &self,
        mut writer: Writer<'_>,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result {
        let meta = event.metadata();

        self.timer.format_time(&mut writer)?;
        write!(writer, " {:>5} ", meta.level().as_str())?;
        if let Some(span) = &span {
            for span in span.scope().from_root() {
                write_sanitized(&mut writer, span.name())?;
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        // Events forwarded from `log` carry their record's target in a field.
        let forwarded = crate::log_bridge::is_forwarded(meta);
        match forwarded
            .then(|| crate::log_bridge::record_target(event, |t| write_sanitized(&mut writer, t)))
        {
            Some(Some(written)) => written?,
            _ => write_sanitized(&mut writer, meta.target())?,
        }
        writer.write_str(": ")?;
        let mut visitor = PrettyFields {
            out: &mut writer,
            result: Ok(()),
            message: true,
        };
        event.record(&mut visitor);
        visitor.message = false;
        if forwarded {
            event.record(&mut crate::log_bridge::SkipLogTarget(&mut visitor));
        } else {
            event.record(&mut visitor);
        }
        visitor.result?;
        if forwarded {
            crate::log_bridge::write_pretty_key_values(&mut writer)?;
        }
        if let Some(ids) = ids {
            write!(
                writer,
                " trace_id={} span_id={}",
                ids.trace_id_hex(),
                ids.span_id_hex()
            )?;
            if !ids.is_sampled() {
                writer.write_str(" sampled=false")?;
            }
            let parent = span
                .as_ref()
                .filter(|_| self.parent_span_id)
                .and_then(|span| super::parent_span_id(span, &ids));
            if let Some(parent) = parent {
                write!(
                    writer,
                    " parent_span_id={}",
                    crate::ids::hex_u64(u64::from_be_bytes(parent.to_bytes()))
                )?;
            }
        }
        writer.write_char('\n')
    }
}

/// Writes text with control characters escaped as `\u{..}`.
fn write_sanitized<W: Write + ?Sized>(out: &mut W, text: &str) -> fmt::Result {
    for part in text.split_inclusive(char::is_control) {
        match part.chars().last() {
            Some(c) if c.is_control() => {
                out.write_str(&part[..part.len() - c.len_utf8()])?;
                write!(out, "{}", c.escape_default())?;
            }
            _ => out.write_str(part)?,
        }
    }
    Ok(())
}

struct Sanitizing<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Sanitizing<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_sanitized(self.0, s)
    }
}

/// Two passes: the message first, then ` key=value` for the rest.
struct PrettyFields<'a, W: Write + ?Sized> {
    out: &'a mut W,
    result: fmt::Result,
    message: bool,
}

impl<W: Write + ?Sized> Visit for PrettyFields<'_, W> {
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() || self.message {
            return;
        }
        self.result = (|| {
            write!(self.out, " {}=", field.name())?;
            write!(Sanitizing(self.out), "\"{value}\"")?;
            let Some(first) = value.source() else {
                return Ok(());
            };
            write!(self.out, " {}.chain=[", field.name())?;
            let mut source = Some(first);
            let mut written = 0;
            while let (Some(error), true) = (source, written < MAX_ERROR_SOURCES) {
                if written > 0 {
                    self.out.write_str(", ")?;
                }
                write!(Sanitizing(self.out), "\"{error}\"")?;
                written += 1;
                source = error.source();
            }
            self.out.write_char(']')
        })();
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() || self.message != (field.name() == "message") {
            return;
        }
        self.result = if self.message {
            write_sanitized(self.out, value)
        } else {
            write!(self.out, " {}={value:?}", field.name())
        };
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() || self.message != (field.name() == "message") {
            return;
        }
        self.result = if self.message {
            write!(Sanitizing(self.out), "{value:?}")
        } else {
            write!(self.out, " {}=", field.name())
                .and_then(|()| write!(Sanitizing(self.out), "{value:?}"))
        };
    }
}
