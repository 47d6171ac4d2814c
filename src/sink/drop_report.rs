//! The line that says how many lines a full output dropped.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::format::time::Rfc3339Micros;

/// The message of the report line; the count goes before it.
pub(crate) const MESSAGE: &str = "log lines dropped: the output could not keep up";

/// Appends the report line for a count of dropped lines.
type RenderFn = dyn Fn(u64, &mut String) -> fmt::Result + Send + Sync;

/// How an output renders its "N lines dropped" line, so that line has the
/// output's format. It is written by the output's background thread, as a
/// line of its own, and is not counted among the application's lines.
#[derive(Clone)]
pub(crate) enum DropReport {
    /// `{"timestamp":"…","level":"WARN","target":"tracing_correlation","message":"N log lines dropped: …","dropped_lines":N}`
    Json,
    /// `2026-11-21T19:01:14.123456Z  WARN tracing_correlation: N log lines dropped: … dropped_lines=N`,
    /// the layout of the pretty format.
    Text,
    /// Rendered by the output's own line format (made by
    /// `output::layer::drop_report`): the profile's key names and level
    /// names, the output's static fields, like its other lines.
    Format(Arc<RenderFn>),
}

impl fmt::Debug for DropReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReport::Json => "Json",
            DropReport::Text => "Text",
            DropReport::Format(_) => "Format",
        })
    }
}

impl DropReport {
    /// Appends the report line for `dropped` lines to `out`.
    pub(crate) fn render(&self, dropped: u64, out: &mut String) {
        match self {
            DropReport::Json => {
                out.push_str("{\"timestamp\":\"");
                timestamp(out);
                let _ = writeln!(
                    out,
                    "\",\"level\":\"WARN\",\"target\":\"tracing_correlation\",\
                     \"message\":\"{dropped} {MESSAGE}\",\"dropped_lines\":{dropped}}}"
                );
            }
            DropReport::Text => {
                timestamp(out);
                let _ = writeln!(
                    out,
                    "  WARN tracing_correlation: {dropped} {MESSAGE} dropped_lines={dropped}"
                );
            }
            DropReport::Format(render) => {
                let start = out.len();
                if render(dropped, out).is_err() || !out.ends_with('\n') {
                    // A format that fails still gets its count reported.
                    out.truncate(start);
                    DropReport::Json.render(dropped, out);
                }
            }
        }
    }
}

fn timestamp(out: &mut String) {
    let _ = Rfc3339Micros.format_time(&mut Writer::new(out));
}
