//! Where and how the trace context is written on a line: key names and id
//! encodings for OpenTelemetry, ECS, Google Cloud Logging and Datadog.

use std::borrow::Cow;
use std::fmt::{self, Write};

use super::escape::write_escaped;
use crate::ids::TraceIds;

/// The keys (and id encodings) used for the trace context on each JSON line
/// (a [`Profile`](crate::Profile) names the other keys too).
///
/// ```
/// use tracing_correlation::{JsonFormat, TraceKeys};
///
/// // {"trace.id":"…","span.id":"…"} for Elastic Common Schema.
/// let format = JsonFormat::new().with_trace_keys(TraceKeys::ecs());
/// # drop(format);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceKeys {
    style: Style,
    trace_id: Cow<'static, str>,
    span_id: Cow<'static, str>,
    trace_flags: Option<Cow<'static, str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Style {
    Hex,
    GoogleCloud { project_id: String },
    Datadog,
}

impl TraceKeys {
    /// OpenTelemetry's "Trace Context in non-OTLP Log Formats": `trace_id`
    /// and `span_id` as lowercase hex, `trace_flags` as two hex digits. The
    /// default.
    #[must_use]
    pub fn opentelemetry() -> Self {
        Self::custom("trace_id", "span_id", Some("trace_flags"))
    }

    /// Elastic Common Schema: `trace.id` and `span.id` (hex; ECS has no
    /// flags field).
    #[must_use]
    pub fn ecs() -> Self {
        Self::custom("trace.id", "span.id", None::<&str>)
    }

    /// Google Cloud Logging's special fields:
    /// `logging.googleapis.com/trace` = `projects/<project_id>/traces/<trace>`,
    /// `logging.googleapis.com/spanId` (hex) and
    /// `logging.googleapis.com/trace_sampled` (a boolean).
    #[must_use]
    pub fn google_cloud(project_id: impl Into<String>) -> Self {
        Self {
            style: Style::GoogleCloud {
                project_id: project_id.into(),
            },
            trace_id: Cow::Borrowed("logging.googleapis.com/trace"),
            span_id: Cow::Borrowed("logging.googleapis.com/spanId"),
            trace_flags: Some(Cow::Borrowed("logging.googleapis.com/trace_sampled")),
        }
    }

    /// Datadog: `dd.trace_id` and `dd.span_id` as decimal strings of the low
    /// 64 bits of each id, which is how Datadog joins logs to OpenTelemetry
    /// traces.
    #[must_use]
    pub fn datadog() -> Self {
        Self {
            style: Style::Datadog,
            trace_id: Cow::Borrowed("dd.trace_id"),
            span_id: Cow::Borrowed("dd.span_id"),
            trace_flags: None,
        }
    }

    /// Hex ids under key names of your choice; no flags key when
    /// `trace_flags` is `None`. A name another member of the line already
    /// uses (`level`, `target`…) is written with the `fields.` prefix and
    /// reported by [`JsonFormat::validate`](crate::JsonFormat::validate).
    #[must_use]
    pub fn custom(
        trace_id: impl Into<Cow<'static, str>>,
        span_id: impl Into<Cow<'static, str>>,
        trace_flags: Option<impl Into<Cow<'static, str>>>,
    ) -> Self {
        Self {
            style: Style::Hex,
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            trace_flags: trace_flags.map(Into::into),
        }
    }

    /// The key names, in order: trace id, span id, flags.
    pub(crate) fn names(&self) -> (&str, &str, Option<&str>) {
        (&self.trace_id, &self.span_id, self.trace_flags.as_deref())
    }

    /// Pre-renders the constant text around the ids, under these key names
    /// (the configured ones, or renamed where they collided).
    pub(crate) fn render_as(
        &self,
        trace_id: &str,
        span_id: &str,
        flags: Option<&str>,
    ) -> RenderedKeys {
        let key = |name: &str| {
            let mut out = String::from(",\"");
            let _ = write_escaped(&mut out, name);
            out.push_str("\":");
            out
        };
        let mut trace = key(trace_id);
        trace.push('"');
        if let Style::GoogleCloud { project_id } = &self.style {
            trace.push_str("projects/");
            let _ = write_escaped(&mut trace, project_id);
            trace.push_str("/traces/");
        }
        let mut span = String::from("\"");
        span.push_str(&key(span_id));
        span.push('"');
        let flags = flags.map(|name| {
            let mut out = String::from("\"");
            out.push_str(&key(name));
            if !matches!(self.style, Style::GoogleCloud { .. }) {
                out.push('"');
            }
            out
        });
        RenderedKeys {
            decimal: self.style == Style::Datadog,
            boolean_flags: matches!(self.style, Style::GoogleCloud { .. }),
            trace,
            span,
            flags,
        }
    }
}

impl Default for TraceKeys {
    fn default() -> Self {
        Self::opentelemetry()
    }
}

/// The constant text of [`TraceKeys`], so a line costs a few `write_str`s.
///
/// A user's key name that collides with another key of the line is renamed
/// by the format (see `JsonFormat::validate`), so no name is ever written
/// twice.
#[derive(Debug, Clone)]
pub(crate) struct RenderedKeys {
    decimal: bool,
    boolean_flags: bool,
    /// `,"trace_id":"` (plus the Google Cloud project prefix).
    trace: String,
    /// `","span_id":"`.
    span: String,
    /// `","trace_flags":"` (or `","…trace_sampled":` for booleans).
    flags: Option<String>,
}

impl RenderedKeys {
    /// Writes the members for `ids`, or all-zero ids when `ids` is `None`.
    pub(crate) fn write<W: Write + ?Sized>(
        &self,
        out: &mut W,
        ids: Option<&TraceIds>,
    ) -> fmt::Result {
        let (trace, span, flags) = ids.map_or((0u128, 0u64, 0u8), |ids| {
            (
                u128::from_be_bytes(ids.trace_id().to_bytes()),
                u64::from_be_bytes(ids.span_id().to_bytes()),
                ids.trace_flags().to_u8(),
            )
        });
        out.write_str(&self.trace)?;
        if self.decimal {
            out.write_str(itoa::Buffer::new().format(trace as u64))?;
        } else {
            out.write_str(&crate::ids::hex_u128(trace))?;
        }
        out.write_str(&self.span)?;
        self.write_span_id(out, span)?;
        match &self.flags {
            None => out.write_str("\""),
            Some(key) if self.boolean_flags => {
                out.write_str(key)?;
                out.write_str(if flags & 1 == 1 { "true" } else { "false" })
            }
            Some(key) => {
                out.write_str(key)?;
                out.write_str(&crate::ids::hex_u8(flags))?;
                out.write_str("\"")
            }
        }
    }

    /// Writes a span id in this style's encoding (hex, or decimal for
    /// Datadog), without quotes.
    pub(crate) fn write_span_id<W: Write + ?Sized>(&self, out: &mut W, span: u64) -> fmt::Result {
        if self.decimal {
            out.write_str(itoa::Buffer::new().format(span))
        } else {
            out.write_str(&crate::ids::hex_u64(span))
        }
    }
}
