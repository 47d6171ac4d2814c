//! A panic hook that logs the panic as an `ERROR` event with the trace ids of
//! the panicking thread's span, then runs the previous hook.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::panic::PanicHookInfo;

thread_local! {
    /// Set while this thread is inside the hook, so a panic raised while
    /// logging a panic goes straight to the previous hook.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// The longest a panic waits for the outputs to write what they hold.
const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the hook, chaining to whatever hook was installed before.
pub(crate) fn install() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let reentered = IN_HOOK.try_with(|flag| flag.replace(true)).unwrap_or(true);
        if !reentered {
            log_panic(info);
            // With `panic = "abort"` the process ends right after the hooks:
            // the panic line and the lines queued before it are written now.
            crate::sink::flush_all(FLUSH_BOUND);
            let _ = IN_HOOK.try_with(|flag| flag.set(false));
        }
        previous(info);
    }));
}

fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    // Captured only when RUST_BACKTRACE / RUST_LIB_BACKTRACE ask for it, as
    // std's own hook does; trimmed to the frames that explain the panic.
    let max_frames = BACKTRACE_FRAMES.load(std::sync::atomic::Ordering::Relaxed);
    let backtrace = if max_frames == 0 {
        None
    } else {
        let backtrace = Backtrace::capture();
        match backtrace.status() {
            BacktraceStatus::Captured => trim_backtrace(&backtrace.to_string(), max_frames),
            _ => None,
        }
    };
    // The event is contextual: the panicking thread's entered span (and its
    // trace context) is still current while the hook runs, before unwinding.
    tracing::event!(
        target: "panic",
        tracing::Level::ERROR,
        panic.location = location.as_deref(),
        panic.thread = thread.name().unwrap_or("<unnamed>"),
        panic.backtrace = backtrace.as_deref(),
        "panicked: {message}"
    );
}

/// Frames a panic line's backtrace keeps by default.
pub(crate) const DEFAULT_BACKTRACE_FRAMES: usize = 32;

/// Frames a panic line's backtrace keeps at most; 0 leaves the backtrace out
/// (and skips capturing it).
static BACKTRACE_FRAMES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_BACKTRACE_FRAMES);

/// Sets how many frames the panic line's backtrace keeps (0: none); the rest
/// are counted in a last `[N more frames]` line. Process-wide, like the hook.
pub(crate) fn set_backtrace_frames(frames: usize) {
    BACKTRACE_FRAMES.store(frames, std::sync::atomic::Ordering::Relaxed);
}

/// One symbol of a rendered backtrace (an inlined call is a symbol of its
/// own), with its `at file:line:column` lines.
struct Frame<'a> {
    name: &'a str,
    locations: Vec<&'a str>,
}

/// Parses `std::backtrace::Backtrace`'s `Display` output: `{index:4}: name`
/// starts a frame, six spaces and a name an inlined symbol of the same
/// frame, `at …` lines locate the symbol above them.
fn parse_frames(rendered: &str) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    for line in rendered.lines() {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(location) = text.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut() {
                frame.locations.push(location);
            }
            continue;
        }
        let name = match text.split_once(": ") {
            Some((index, name)) if index.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => text,
        };
        frames.push(Frame {
            name,
            locations: Vec::new(),
        });
    }
    frames
}

/// Frames of std's panic machinery: `std::panicking`, `core::panicking`,
/// `rust_begin_unwind` and any `__rust_*` symbol (the short-backtrace
/// markers, `__rust_try`).
fn is_std_panic_machinery(name: &str) -> bool {
    name.starts_with("std::panicking::")
        || name.starts_with("core::panicking::")
        || name.contains("rust_begin_unwind")
        || name.starts_with("__rust_")
        || name.contains("::__rust_")
}

/// std's panic machinery and this hook's own frames.
fn is_panic_machinery(name: &str) -> bool {
    is_std_panic_machinery(name) || name.starts_with(concat!(module_path!(), "::"))
}

/// What lies between the capture and the panicking frame: the capture, the
/// hook and its boxed call (its type names `PanicHookInfo`), the panic
/// machinery, `panic_any`, and `core`'s `unwrap`/`expect` helpers (their
/// `#[track_caller]` location is the caller's, so the backtrace starts where
/// `panic.location` points).
fn is_before_panicking_frame(name: &str) -> bool {
    is_panic_machinery(name)
        || name.starts_with("std::backtrace")
        || name.contains("PanicHookInfo")
        || name.starts_with("std::panic::panic_any")
        || name.starts_with("core::option::")
        || name.starts_with("core::result::")
}

/// The backtrace of a panic line: from the panicking frame down to where the
/// runtime (or a thread's start, or the test harness) called the code, i.e.
/// the first `__rust_begin_short_backtrace`, like std's own short backtrace;
/// without the hook's and std's panic frames anywhere (a `catch_unwind` in
/// between, as task runtimes have, leaves `std::panicking` frames); at most
/// `max_frames` frames, the rest counted. `None` when nothing is left.
fn trim_backtrace(rendered: &str, max_frames: usize) -> Option<String> {
    use std::fmt::Write as _;

    let frames = parse_frames(rendered);
    // Whatever runs the hook (closures, adapters, another hook calling this
    // one) sits above std's panic machinery: skip to that first.
    let anchor = frames
        .iter()
        .position(|frame| is_std_panic_machinery(frame.name))
        .unwrap_or(0);
    let start = anchor
        + frames[anchor..]
            .iter()
            .position(|frame| !is_before_panicking_frame(frame.name))?;
    let end = frames[start..]
        .iter()
        .position(|frame| frame.name.contains("__rust_begin_short_backtrace"))
        .map_or(frames.len(), |at| start + at);
    let kept: Vec<&Frame<'_>> = frames[start..end]
        .iter()
        .filter(|frame| !is_panic_machinery(frame.name))
        .collect();
    if kept.is_empty() || max_frames == 0 {
        return None;
    }
    let mut out = String::new();
    for (index, frame) in kept.iter().take(max_frames).enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{index:4}: {}", frame.name);
        for location in &frame.locations {
            let _ = write!(out, "\n             at {location}");
        }
    }
    if kept.len() > max_frames {
        let _ = write!(out, "\n      [{} more frames]", kept.len() - max_frames);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// std's `Display` of a backtrace captured in this hook, for
    /// `inner(None)` (`Option::unwrap`) called by `outer` in a spawned
    /// thread, inside a `catch_unwind`, with an inlined symbol.
    const CAPTURED: &str = "   0: tracing_correlation::panic_hook::log_panic
             at ./src/panic_hook.rs:38:21
   1: tracing_correlation::panic_hook::install::{{closure}}
             at ./src/panic_hook.rs:20:13
   2: <alloc::boxed::Box<dyn for<'a, 'b> core::ops::function::Fn<(&'a std::panic::PanicHookInfo<'b>,), Output = ()> + core::marker::Sync + core::marker::Send> as core::ops::function::Fn<(&std::panic::PanicHookInfo,)>>::call
             at /rustc/library/alloc/src/boxed.rs:2254:9
   3: std::panicking::panic_with_hook
             at /rustc/library/std/src/panicking.rs:833:13
   4: std::panicking::panic_handler::{closure#0}
             at /rustc/library/std/src/panicking.rs:691:13
   5: std::sys::backtrace::__rust_end_short_backtrace::<std::panicking::panic_handler::{closure#0}, !>
             at /rustc/library/std/src/sys/backtrace.rs:182:18
   6: __rustc::rust_begin_unwind
             at /rustc/library/std/src/panicking.rs:689:5
   7: core::panicking::panic_fmt
             at /rustc/library/core/src/panicking.rs:80:14
   8: core::panicking::panic
             at /rustc/library/core/src/panicking.rs:150:5
   9: core::option::unwrap_failed
             at /rustc/library/core/src/option.rs:2236:5
  10: core::option::Option<T>::unwrap
             at /rustc/library/core/src/option.rs:1016:21
  11: app::inner
             at ./src/main.rs:3:52
      app::helper
             at ./src/main.rs:9:5
  12: app::outer
             at ./src/main.rs:4:37
  13: tokio::runtime::task::harness::poll_future::{{closure}}
             at /cargo/tokio/src/runtime/task/harness.rs:473:19
  14: std::panicking::catch_unwind::do_call
             at /rustc/library/std/src/panicking.rs:581:40
  15: __rust_try
  16: std::panicking::catch_unwind
             at /rustc/library/std/src/panicking.rs:544:19
  17: std::panic::catch_unwind
             at /rustc/library/std/src/panic.rs:359:14
  18: app::main::{{closure}}
             at ./src/main.rs:8:41
  19: std::sys::backtrace::__rust_begin_short_backtrace
             at /rustc/library/std/src/sys/backtrace.rs:166:18
  20: std::thread::lifecycle::spawn_unchecked::{{closure}}::{{closure}}
             at /rustc/library/std/src/thread/lifecycle.rs:91:13
  21: start_thread
  22: clone3
";

    #[test]
    fn starts_at_the_panicking_frame_without_panic_machinery() {
        assert_eq!(
            trim_backtrace(CAPTURED, 32).as_deref(),
            Some(
                "   0: app::inner
             at ./src/main.rs:3:52
   1: app::helper
             at ./src/main.rs:9:5
   2: app::outer
             at ./src/main.rs:4:37
   3: tokio::runtime::task::harness::poll_future::{{closure}}
             at /cargo/tokio/src/runtime/task/harness.rs:473:19
   4: std::panic::catch_unwind
             at /rustc/library/std/src/panic.rs:359:14
   5: app::main::{{closure}}
             at ./src/main.rs:8:41"
            )
        );
    }

    #[test]
    fn frames_above_the_panic_machinery_are_skipped() {
        // A closure or adapter between the capture and the hook's box.
        let adapted = CAPTURED.replacen(
            "   0: tracing_correlation::panic_hook::log_panic",
            "   0: core::ops::function::FnOnce::call_once\n   1: core::bool::<impl bool>::then\n      tracing_correlation::panic_hook::log_panic",
            1,
        );
        assert_eq!(trim_backtrace(&adapted, 32), trim_backtrace(CAPTURED, 32));
    }

    #[test]
    fn is_bounded_and_counts_what_it_leaves_out() {
        assert_eq!(
            trim_backtrace(CAPTURED, 2).as_deref(),
            Some(
                "   0: app::inner
             at ./src/main.rs:3:52
   1: app::helper
             at ./src/main.rs:9:5
      [4 more frames]"
            )
        );
        assert_eq!(trim_backtrace(CAPTURED, 0), None);
    }

    #[test]
    fn nothing_left_is_no_backtrace() {
        let only_machinery =
            "   0: std::panicking::panic_with_hook\n   1: __rustc::rust_begin_unwind\n";
        assert_eq!(trim_backtrace(only_machinery, 32), None);
        assert_eq!(trim_backtrace("", 32), None);
    }
}
