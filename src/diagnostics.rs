//! The one path by which the crate speaks about itself: a line on stderr,
//! never stdout, that ignores every write error and never panics.
//!
//! `eprintln!` panics when stderr is closed or full (`/dev/full`, a closed
//! pipe); a logging library must not take the application down because its
//! own diagnostics cannot be written.

use std::fmt;
use std::io::Write;

/// Longest diagnostic written; anything longer is cut (on a character
/// boundary) so a hostile value quoted in a message cannot flood stderr.
const MAX_LEN: usize = 4096;

/// Writes `tracing-correlation: <message>\n` to stderr in one `write` call,
/// ignoring errors.
pub(crate) fn write_report(message: fmt::Arguments<'_>) {
    let mut line = String::with_capacity(128);
    line.push_str("tracing-correlation: ");
    if fmt::write(&mut line, message).is_err() {
        line.push_str("(a diagnostic could not be formatted)");
    }
    if line.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line.push('\n');
    // `Stderr` is unbuffered: one `write_all` is one line, and its error
    // (EBADF, EPIPE, ENOSPC) is dropped rather than turned into a panic.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `report!("...", args)`: formats like `format!` and hands the text to
/// [`write_report`].
macro_rules! report {
    ($($arg:tt)*) => {
        $crate::diagnostics::write_report(format_args!($($arg)*))
    };
}
pub(crate) use report;

#[cfg(test)]
mod tests {
    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        // Writing to the real stderr must not panic, whatever the length.
        let long = "é".repeat(10_000);
        report!("{long}");
    }
}
