//! RFC 3339 UTC timestamps with microseconds, written without allocating.

use std::cell::Cell;
use std::fmt;
use std::time::SystemTime;

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

thread_local! {
    /// The last second this thread formatted and its text up to the `.`:
    /// calendar arithmetic runs once a second, not once a line.
    static LAST_SECOND: Cell<(i64, [u8; 20])> = const { Cell::new((i64::MIN, [0; 20])) };
    /// The time read for the line this thread formats, in nanoseconds since
    /// the Unix epoch (0: none), until the output it is handed to takes it
    /// as the line's place in time: one clock read a line, not two.
    static LINE_CLOCK: Cell<u64> = const { Cell::new(0) };
}

/// The time read for the line being handed over (see `write_now`), or the
/// time now if its format read none; in nanoseconds since the Unix epoch.
/// Clears it, so that a later line never takes it.
pub(crate) fn take_line_clock() -> u64 {
    match LINE_CLOCK.try_with(|clock| clock.replace(0)) {
        Ok(at) if at != 0 => at,
        _ => clock_now(),
    }
}

/// Forgets the time read for a line that is not handed to an output (kept
/// in an error buffer): it must not stand for a later line's.
pub(crate) fn discard_line_clock() {
    let _ = LINE_CLOCK.try_with(|clock| clock.set(0));
}

fn clock_now() -> u64 {
    let (seconds, nanos) = wall_clock();
    as_nanos(seconds, nanos)
}

fn as_nanos(seconds: u64, nanos: u32) -> u64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(nanos))
}

/// The wall clock: whole seconds since the Unix epoch and the nanoseconds
/// into the current one; `(0, 0)` for a clock set before 1970.
///
/// On Unix, `clock_gettime(CLOCK_REALTIME)` itself (a vDSO call, no system
/// call): `SystemTime::now().duration_since(UNIX_EPOCH)` reads the same
/// clock, then spends about 65 instructions a line (callgrind) on checked
/// arithmetic and a `Duration` that the formatter takes apart again.
#[cfg(unix)]
fn wall_clock() -> (u64, u32) {
    let mut now = std::mem::MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `now` is valid for writes of one `timespec`, which is all
    // `clock_gettime` writes; it is read only if the call succeeded, when it
    // has been written. `CLOCK_REALTIME` exists on every Unix.
    #[allow(unsafe_code)]
    let now = unsafe {
        if libc::clock_gettime(libc::CLOCK_REALTIME, now.as_mut_ptr()) != 0 {
            return system_clock();
        }
        now.assume_init()
    };
    match (u64::try_from(now.tv_sec), u32::try_from(now.tv_nsec)) {
        (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => (seconds, nanos),
        _ => (0, 0),
    }
}

#[cfg(not(unix))]
fn wall_clock() -> (u64, u32) {
    system_clock()
}

/// [`wall_clock`] through `std`.
fn system_clock() -> (u64, u32) {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or((0, 0), |since| (since.as_secs(), since.subsec_nanos()))
}

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_now(w)
    }
}

/// Writes the current time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`: what
/// [`Rfc3339Micros`] writes, callable without a `Writer` (the JSON format's
/// path for its default timer: the text needs no escaping).
pub(crate) fn write_now<W: fmt::Write + ?Sized>(out: &mut W) -> fmt::Result {
    let (seconds, nanos) = wall_clock();
    let _ = LINE_CLOCK.try_with(|clock| clock.set(as_nanos(seconds, nanos)));
    let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
    let cached = LAST_SECOND.try_with(|last| {
        let (second, mut prefix) = last.get();
        if second != seconds {
            let mut text = String::with_capacity(27);
            let at = time::OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let _ = write_rfc3339_micros(&mut text, at);
            prefix.copy_from_slice(&text.as_bytes()[..20]);
            // Only ASCII is ever cached (see below); the text is ASCII by
            // construction, so this never replaces it.
            if !prefix.is_ascii() {
                prefix = *b"1970-01-01T00:00:00.";
            }
            last.set((seconds, prefix));
        }
        prefix
    });
    let Ok(prefix) = cached else {
        return write_rfc3339_micros(out, time::OffsetDateTime::now_utc());
    };
    let mut buf = [0u8; 27];
    buf[..20].copy_from_slice(&prefix);
    let micros = nanos / 1_000;
    // Two digits per lookup: `micros` < 1,000,000 gives three pairs.
    for (at, pair) in [
        (20, micros / 10_000),
        (22, micros / 100 % 100),
        (24, micros % 100),
    ] {
        let pair = usize::try_from(pair % 100).unwrap_or(0);
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair]);
    }
    buf[26] = b'Z';
    debug_assert!(buf.is_ascii());
    // SAFETY: every byte of `buf` is ASCII, hence UTF-8: bytes 0..20 are a
    // cached prefix (`LAST_SECOND` starts as NULs and is only ever set to
    // an ASCII prefix, checked just above), 20..26 are pairs of ASCII digits
    // from `DIGIT_PAIRS`, and 26 is `Z`. Checking `buf` itself here cost
    // about 2.5 % of a logging thread's time (perf: this function fell from
    // 7.7-8.1 % of its samples to 5.0-6.0 %): word-sized reads of bytes
    // just written a pair at a time cannot be served from the store buffer
    // and wait for the stores to complete.
    #[allow(unsafe_code)]
    let text = unsafe { std::str::from_utf8_unchecked(&buf) };
    out.write_str(text)
}

/// `00` to `99`.
static DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut table = [[0u8; 2]; 100];
    let mut n = 0;
    while n < 100 {
        table[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    table
};

/// `bytes` as text; they are ASCII digits and punctuation by construction.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    if !bytes.is_ascii() {
        return "1970-01-01T00:00:00.000000Z";
    }
    // SAFETY: checked just above to be ASCII, which is UTF-8 (`is_ascii` is
    // a word-at-a-time scan, far cheaper than `from_utf8`'s validation).
    #[allow(unsafe_code)]
    unsafe {
        std::str::from_utf8_unchecked(bytes)
    }
}

/// Writes `at` (taken as UTC) as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn write_rfc3339_micros<W: fmt::Write + ?Sized>(
    out: &mut W,
    at: time::OffsetDateTime,
) -> fmt::Result {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = u32::try_from(at.year().clamp(0, 9999)).unwrap_or(0);
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
    out.write_str(ascii(&buf))
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
        let parsed =
            time::OffsetDateTime::parse(&out, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(parsed.unix_timestamp(), at.unix_timestamp());
    }

    #[test]
    fn the_timer_agrees_with_the_clock() {
        let before = time::OffsetDateTime::now_utc();
        let mut out = String::new();
        Rfc3339Micros
            .format_time(&mut Writer::new(&mut out))
            .unwrap();
        Rfc3339Micros
            .format_time(&mut Writer::new(&mut String::new()))
            .unwrap();
        let after = time::OffsetDateTime::now_utc();
        let parsed =
            time::OffsetDateTime::parse(&out, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert!(
            before - time::Duration::microseconds(1) <= parsed && parsed <= after,
            "{out}"
        );
        assert_eq!(out.len(), 27);
    }

    #[test]
    fn the_wall_clock_is_the_system_clock() {
        let since_epoch = || {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        };
        for _ in 0..1_000 {
            let before = since_epoch();
            let (seconds, nanos) = wall_clock();
            let after = since_epoch();
            assert!(nanos < 1_000_000_000);
            let read = u128::from(seconds) * 1_000_000_000 + u128::from(nanos);
            assert!(before <= read && read <= after, "{before} {read} {after}");
            assert_eq!(u128::from(as_nanos(seconds, nanos)), read);
        }
        // A line's clock never wraps, whatever the clock says.
        assert_eq!(as_nanos(u64::MAX / 2, 999_999_999), u64::MAX);
    }

    #[test]
    fn converts_offsets_to_utc() {
        let at = time::macros::datetime!(2026-01-01 01:30:00 +02:00);
        let mut out = String::new();
        write_rfc3339_micros(&mut out, at).unwrap();
        assert_eq!(out, "2025-12-31T23:30:00.000000Z");
    }
}
