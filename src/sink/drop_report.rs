//! The line that says how many lines a full output dropped.

use std::fmt::Write as _;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use crate::format::time::Rfc3339Micros;

/// The message of the report line; the count goes before it.
pub(crate) const MESSAGE: &str = "log lines dropped: the output could not keep up";

/// How an output renders its "N lines dropped" line, so that line has the
/// output's format. It is written by the output's background thread, as a
/// line of its own, and is not counted among the application's lines.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DropReport {
    /// `{"timestamp":"…","level":"WARN","target":"tracing_correlation","message":"N log lines dropped: …","dropped_lines":N}`
    Json,
    /// `2026-11-21T19:01:14.123456Z  WARN tracing_correlation: N log lines dropped: … dropped_lines=N`,
    /// the layout of the pretty format.
    Text,
    /// Any other rendering (another format's key names); must append one
    /// whole line ending in `\n`.
    #[allow(dead_code)] // for profiles whose key names differ (not wired yet)
    Custom(fn(dropped: u64, out: &mut String)),
}

impl DropReport {
    /// Appends the report line for `dropped` lines to `out`.
    pub(crate) fn render(self, dropped: u64, out: &mut String) {
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
            DropReport::Custom(render) => render(dropped, out),
        }
    }
}

fn timestamp(out: &mut String) {
    let _ = Rfc3339Micros.format_time(&mut Writer::new(out));
}
