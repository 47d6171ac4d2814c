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
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
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
