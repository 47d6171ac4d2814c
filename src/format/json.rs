//! The JSON event formatter: one object per line, trace context included.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::baggage::BaggageFields;
use super::escape::{write_escaped, write_quoted, Escaping};
use super::fields::{reserved_bits, JsonFields, KeySet, MessageOnly, Pass};
use super::keys::{RenderedKeys, TraceKeys};
use super::time::Rfc3339Micros;
use crate::ids::TraceIds;
use crate::layer::with_span_data;

/// What to write when an event belongs to no valid trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingIds {
    /// Leave the trace keys out (the OpenTelemetry recommendation). The
    /// default.
    #[default]
    Omit,
    /// Write all-zero ids (and flags `00`), for pipelines that want every
    /// line to have the keys.
    Zeros,
}

/// Where an event's own fields go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldPlacement {
    /// Top-level keys beside `message` (the default). A field whose name is
    /// already taken (`level`, `trace_id`, another field…) is written as
    /// `fields.<name>`.
    #[default]
    Flatten,
    /// Under a `"fields":{…}` object; `message` stays top-level.
    Nested,
}

/// A [`FormatEvent`] that writes each event as one JSON object per line:
///
/// ```json
/// {"timestamp":"2026-11-21T19:01:14.123456Z","level":"INFO","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":"01","target":"app","message":"handled","status":200,"span":{"name":"request","method":"GET"}}
/// ```
///
/// * `trace_id` / `span_id` / `trace_flags` are the event's trace context
///   (see [`TraceKeys`] for other key names); left out when there is none
///   (see [`MissingIds`]).
/// * An event inside a span gets the current context's ids; an event with an
///   explicit parent (`info!(parent: &span, …)`) gets that span's ids.
/// * Every string is escaped; no key is ever written twice.
/// * Span fields come pre-rendered from the [`CorrelationLayer`](crate::CorrelationLayer),
///   which must be in the same subscriber for `span`/`spans` to carry fields.
///
/// Nothing is allocated per event for ordinary fields.
///
/// ```
/// use tracing_correlation::{CorrelationLayer, FieldPlacement, JsonFormat, TraceKeys};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let format = JsonFormat::new()
///     .with_trace_keys(TraceKeys::google_cloud("my-project"))
///     .with_fields(FieldPlacement::Nested)
///     .with_span_list(true);
/// let subscriber = tracing_subscriber::registry()
///     .with(CorrelationLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(format));
/// # drop(subscriber);
/// ```
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent options, each with its own setter
pub struct JsonFormat<T = Rfc3339Micros> {
    timer: Option<T>,
    keys: TraceKeys,
    rendered_keys: RenderedKeys,
    missing: MissingIds,
    placement: FieldPlacement,
    current_span: bool,
    span_list: bool,
    target: bool,
    /// Top-level keys an event field may not take.
    reserved: Vec<Cow<'static, str>>,
    reserved_bits: u64,
    /// Whether no reserved key is named like a forwarded record's location
    /// key (`log.file`…), so those are written without checks.
    location_keys_free: bool,
    baggage: BaggageFields,
}

impl JsonFormat {
    /// The default format: timestamp, level, trace context, target, message,
    /// flattened fields and the current span.
    #[must_use]
    pub fn new() -> Self {
        let keys = TraceKeys::default();
        let mut this = Self {
            timer: Some(Rfc3339Micros),
            rendered_keys: keys.render(),
            keys,
            missing: MissingIds::Omit,
            placement: FieldPlacement::Flatten,
            current_span: true,
            span_list: false,
            target: true,
            reserved: Vec::new(),
            reserved_bits: 0,
            location_keys_free: true,
            baggage: BaggageFields::default(),
        };
        this.set_reserved();
        this
    }
}

impl Default for JsonFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> JsonFormat<T> {
    /// Uses another timer for `timestamp` (any
    /// `tracing_subscriber::fmt::time::FormatTime`, e.g. a fixed clock in tests).
    #[must_use]
    pub fn with_timer<T2>(self, timer: T2) -> JsonFormat<T2> {
        JsonFormat {
            timer: Some(timer),
            keys: self.keys,
            rendered_keys: self.rendered_keys,
            missing: self.missing,
            placement: self.placement,
            current_span: self.current_span,
            span_list: self.span_list,
            target: self.target,
            reserved: self.reserved,
            reserved_bits: self.reserved_bits,
            location_keys_free: self.location_keys_free,
            baggage: self.baggage,
        }
    }

    /// Leaves `timestamp` out (for platforms that stamp lines themselves).
    #[must_use]
    pub fn without_time(mut self) -> Self {
        self.timer = None;
        self
    }

    /// Chooses the trace context key names and encodings.
    #[must_use]
    pub fn with_trace_keys(mut self, keys: TraceKeys) -> Self {
        self.rendered_keys = keys.render();
        self.keys = keys;
        self.set_reserved();
        self
    }

    /// Chooses what to write when there is no trace context.
    #[must_use]
    pub fn with_missing_ids(mut self, missing: MissingIds) -> Self {
        self.missing = missing;
        self
    }

    /// Chooses where event fields go.
    #[must_use]
    pub fn with_fields(mut self, placement: FieldPlacement) -> Self {
        self.placement = placement;
        self.set_reserved();
        self
    }

    /// Whether to write the current span's name and fields as `span` (on by
    /// default).
    #[must_use]
    pub fn with_current_span(mut self, on: bool) -> Self {
        self.current_span = on;
        self
    }

    /// Whether to write every span of the event's scope, root first, as
    /// `spans` (off by default).
    #[must_use]
    pub fn with_span_list(mut self, on: bool) -> Self {
        self.span_list = on;
        self
    }

    /// Whether to write the event's `target` (on by default).
    #[must_use]
    pub fn with_target(mut self, on: bool) -> Self {
        self.target = on;
        self
    }

    /// Copies these W3C baggage entries, when present, onto each line as
    /// top-level string members (`"tenant":"acme"`). Baggage comes from other
    /// processes, so nothing outside this list is ever written, and each value
    /// is cut to [`with_baggage_max_len`](Self::with_baggage_max_len) bytes
    /// and escaped.
    ///
    /// Values are read from the current context
    /// (`opentelemetry::Context::current()`: the baggage the entered span was
    /// created with, or an explicitly attached context), so events with an
    /// explicit parent (`info!(parent: &span, …)`) and other non-contextual
    /// events carry no baggage members. A key already taken — by our own keys
    /// (`level`, `trace_id`…) or by one of the event's fields — is written as
    /// `fields.<key>`. An empty list (the default) costs nothing per event.
    ///
    /// ```
    /// use tracing_correlation::JsonFormat;
    ///
    /// let format = JsonFormat::new()
    ///     .with_baggage_fields(["tenant", "user_id"])
    ///     .with_baggage_max_len(64);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_baggage_fields<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.baggage.set_keys(keys);
        self
    }

    /// The longest baggage value written, in bytes (256 by default); longer
    /// values are cut on a character boundary.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new().with_baggage_max_len(32);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_baggage_max_len(mut self, bytes: usize) -> Self {
        self.baggage.set_max_value_len(bytes);
        self
    }

    fn set_reserved(&mut self) {
        self.reserved = self.reserved_keys();
        self.reserved_bits = reserved_bits(&self.reserved);
        self.location_keys_free = !crate::log_bridge::location_key_reserved(&self.reserved);
    }

    fn reserved_keys(&self) -> Vec<Cow<'static, str>> {
        let mut keys: Vec<Cow<'static, str>> = [
            "timestamp",
            "level",
            "target",
            "message",
            "span",
            "spans",
            "fields",
        ]
        .into_iter()
        .map(Cow::Borrowed)
        .collect();
        keys.extend(self.keys.names().cloned());
        keys
    }
}

impl<S, N, T> FormatEvent<S, N> for JsonFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (span, ids) = super::event_span_and_ids(ctx, event);
        // Assemble the line in a reused thread-local buffer (inlined appends
        // instead of a dynamic call per piece), then hand it over at once.
        // Logging from inside formatting finds the buffer busy and writes
        // directly instead.
        let buffered = LINE.try_with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return None;
            };
            line.clear();
            let result = self
                .write_line(&mut *line, event, span.as_ref(), ids)
                .and_then(|()| writer.write_str(&line));
            if line.capacity() > MAX_KEPT_LINE_CAPACITY {
                *line = String::new();
            }
            Some(result)
        });
        match buffered {
            Ok(Some(result)) => result,
            _ => self.write_line(&mut writer, event, span.as_ref(), ids),
        }
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Event fields checked for duplicates without allocating; more spill.
const EVENT_KEYS: usize = 16;

/// A buffer grown by one huge line is not kept.
const MAX_KEPT_LINE_CAPACITY: usize = 64 * 1024;

impl<T: FormatTime> JsonFormat<T> {
    /// Writes one whole line (ending in `\n`) for `event`, which belongs to
    /// `span` and carries `ids`.
    pub(crate) fn write_line<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
        &self,
        out: &mut W,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result {
        let meta = event.metadata();
        out.write_str("{")?;
        if let Some(timer) = &self.timer {
            out.write_str("\"timestamp\":\"")?;
            write_time(out, timer)?;
            out.write_str("\",")?;
        }
        out.write_str("\"level\":\"")?;
        out.write_str(meta.level().as_str())?;
        out.write_str("\"")?;
        match (ids, self.missing) {
            (Some(ids), _) => self.rendered_keys.write(out, Some(&ids))?,
            (None, MissingIds::Zeros) => self.rendered_keys.write(out, None)?,
            (None, MissingIds::Omit) => {}
        }
        // Events forwarded from `log` carry their record's target in a field.
        let forwarded = crate::log_bridge::is_forwarded(meta);
        if self.target {
            out.write_str(",\"target\":")?;
            match forwarded
                .then(|| crate::log_bridge::record_target(event, |t| write_quoted(out, t)))
            {
                Some(Some(written)) => written?,
                _ => write_quoted(out, meta.target())?,
            }
        }

        self.write_message_and_fields(out, event, forwarded)?;

        if let Some(span) = span {
            if self.current_span {
                out.write_str(",\"span\":{")?;
                write_span_members(out, span)?;
                out.write_str("}")?;
            }
            if self.span_list {
                out.write_str(",\"spans\":[")?;
                for (i, span) in span.scope().from_root().enumerate() {
                    out.write_str(if i == 0 { "{" } else { ",{" })?;
                    write_span_members(out, &span)?;
                    out.write_str("}")?;
                }
                out.write_str("]")?;
            }
        }
        out.write_str("}\n")
    }

    /// Writes `message`, the event's fields (or a forwarded record's
    /// key-values) and allowlisted baggage.
    fn write_message_and_fields<W: Write + ?Sized>(
        &self,
        out: &mut W,
        event: &Event<'_>,
        forwarded: bool,
    ) -> fmt::Result {
        let meta = event.metadata();
        // `tracing`'s macros put `message` first, so one pass writes it
        // before the fields; otherwise a first pass picks it out.
        let mut names = meta.fields().iter();
        // (The bridge writes a forwarded record's fields itself, after it.)
        let message_first = !forwarded && names.next().is_some_and(|f| f.name() == "message");
        let pass = if message_first {
            Pass::InlineMessage
        } else {
            if meta.fields().field("message").is_some() {
                out.write_str(",\"message\":\"")?;
                let staged = if forwarded {
                    crate::log_bridge::write_message(&mut *out)
                } else {
                    None
                };
                if let Some(written) = staged {
                    written?;
                } else {
                    let mut message = MessageOnly {
                        out: &mut *out,
                        found: false,
                        result: Ok(()),
                    };
                    event.record(&mut message);
                    message.result?;
                }
                out.write_str("\"")?;
            }
            Pass::SkipMessage
        };
        let (reserved, bits, opening): (&[Cow<'static, str>], u64, &str) = match self.placement {
            FieldPlacement::Flatten => (&self.reserved, self.reserved_bits, ","),
            FieldPlacement::Nested => (&[], 0, ",\"fields\":{"),
        };
        let with_baggage = self.baggage.is_active()
            && event.is_contextual()
            && !super::is_opentelemetry_internal(meta.target());
        // Flattened, baggage shares the event's key set (the event's own
        // fields keep their names); nested, it goes beside `fields`.
        let flat_baggage =
            (with_baggage && self.placement == FieldPlacement::Flatten).then_some(&self.baggage);
        let wrote_any = if forwarded {
            // Adds the record's key-values, rendered by the bridge.
            crate::log_bridge::write_json_fields(
                &mut *out,
                event,
                (
                    reserved,
                    bits,
                    reserved.is_empty() || self.location_keys_free,
                ),
                opening,
                flat_baggage,
            )?
        } else {
            let mut keys = KeySet::<EVENT_KEYS>::with_bits(reserved, bits);
            let mut fields = JsonFields::new(&mut *out, &mut keys, pass, opening, ",");
            event.record(&mut fields);
            let wrote_any = fields.wrote_any();
            fields.result?;
            if let Some(baggage) = flat_baggage {
                baggage.write(out, &mut keys)?;
            }
            wrote_any
        };
        if wrote_any && self.placement == FieldPlacement::Nested {
            out.write_str("}")?;
        }
        if with_baggage && self.placement == FieldPlacement::Nested {
            let mut top_level = KeySet::<EVENT_KEYS>::with_bits(&self.reserved, self.reserved_bits);
            self.baggage.write(out, &mut top_level)?;
        }
        Ok(())
    }
}

/// Writes the timer's output escaped; short output (any sane timestamp) goes
/// through a stack buffer and is escaped in one go.
fn write_time<T: FormatTime, W: Write + ?Sized>(out: &mut W, timer: &T) -> fmt::Result {
    let mut stack = StackText::default();
    if timer.format_time(&mut Writer::new(&mut stack)).is_ok() {
        write_escaped(out, stack.as_str())
    } else if stack.overflowed {
        timer.format_time(&mut Writer::new(&mut Escaping(out)))
    } else {
        Err(fmt::Error)
    }
}

/// Up to 64 bytes of text on the stack.
struct StackText {
    bytes: [u8; 64],
    len: usize,
    overflowed: bool,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
            overflowed: false,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes a span's `"name":…` and fields (no braces).
fn write_span_members<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
    out: &mut W,
    span: &SpanRef<'a, R>,
) -> fmt::Result {
    with_span_data(span, |data| data.fields.write_members(out)).unwrap_or_else(|| {
        // No correlation layer: the name is all we know.
        out.write_str("\"name\":\"")?;
        write_escaped(out, span.name())?;
        out.write_str("\"")
    })
}
