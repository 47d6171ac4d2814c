//! RFC 3339 UTC timestamps with microseconds, written without allocating.

use std::fmt;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The default timer: RFC 3339 in UTC with microseconds,
/// `2026-11-21T19:01:14.123456Z`.
///
/// ```
/// use tracing_correlation::{JsonFormat, Rfc3339Micros};
///
/// let format = JsonFormat::new().with_timer(Rfc3339Micros);
/// # drop(format);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_rfc3339_micros(w, time::OffsetDateTime::now_utc())
    }
}

/// Writes `at` (taken as UTC) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn write_rfc3339_micros<W: fmt::Write + ?Sized>(
    out: &mut W,
    at: time::OffsetDateTime,
) -> fmt::Result {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = at.year().clamp(0, 9999) as u32;
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |start: usize, width: usize, mut value: u32| {
        for i in (start..start + width).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u32::from(u8::from(at.month())));
    put(8, 2, u32::from(at.day()));
    put(11, 2, u32::from(at.hour()));
    put(14, 2, u32::from(at.minute()));
    put(17, 2, u32::from(at.second()));
    put(20, 6, at.microsecond());
    out.write_str(std::str::from_utf8(&buf).unwrap_or("1970-01-01T00:00:00.000000Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_rfc3339_with_micros() {
        let at = time::macros::datetime!(2026-11-21 19:01:14.123_456_789 UTC);
        let mut out = String::new();
        write_rfc3339_micros(&mut out, at).unwrap();
        assert_eq!(out, "2026-11-21T19:01:14.123456Z");
        let parsed = time::OffsetDateTime::parse(&out, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed.unix_timestamp(), at.unix_timestamp());
    }

    #[test]
    fn converts_offsets_to_utc() {
        let at = time::macros::datetime!(2026-01-01 01:30:00 +02:00);
        let mut out = String::new();
        write_rfc3339_micros(&mut out, at).unwrap();
        assert_eq!(out, "2025-12-31T23:30:00.000000Z");
    }
}
