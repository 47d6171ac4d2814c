//! Instruction counts per operation for other ways to put correlated JSON
//! lines out of a Rust service, side by side with `fmt().json()` and our
//! stand-alone builder, from one binary.
//!
//! Opt-in: this package has its own workspace, so the library's build and
//! `cargo test --workspace` never compile fastrace, logforth or
//! json-subscriber. `benches/compare/instructions.sh` runs every case under
//! callgrind twice with different lengths and prints the difference per
//! operation, the ratio to `fmt_json_*` of the same group and the heap
//! allocations per operation:
//!
//! ```sh
//! benches/compare/instructions.sh          # needs valgrind
//! cargo run --release -- list
//! cargo run --release -- ours_request 1000
//! cargo run --release -- fastrace_logforth_event show   # one line to stdout
//! ```
//!
//! The workload is the one of the library's `benches/instructions.rs`: an
//! `info!(user_id = 42, path = "/api/items", "request handled")` inside
//! three nested entered spans with two fields each — request{method, path},
//! handler{user, admin}, db{table, shard} — every line written to
//! `std::io::sink`. `<stack>_event` logs in spans entered once;
//! `<stack>_request` creates and enters the three spans, logs, and closes
//! them.
//!
//! What each stack does, so the figures compare like with like:
//!
//! - `fmt_json`: `tracing_subscriber::fmt().json()`; the line holds time,
//!   level, fields, target, the current span and the span list with their
//!   fields; no ids.
//! - `ours`: `tracing_correlation::builder()` stand-alone; the line holds
//!   time, level, message, fields, target, the span's name and fields, and
//!   the trace and span ids (generated, no OpenTelemetry SDK).
//! - `json_subscriber`: `json_subscriber::fmt()`, the same content as
//!   `fmt().json()` (its defaults), no ids.
//! - `fastrace_logforth`: a fastrace root span per request and two local
//!   spans under it, their fields as fastrace properties (strings: numbers
//!   and booleans are rendered when the span is created, as an application
//!   using fastrace has to); the event through the `log` facade into
//!   logforth, whose fastrace diagnostic adds `trace_id`, `span_id` and
//!   `sampled` and whose JSON layout writes time, level, target, file,
//!   line, message and fields — no span names or fields on the line. The
//!   spans are really collected: a reporter is set (so fastrace does not
//!   drop them at the source), the collector thread's work is in the count
//!   (callgrind and the allocation counter see every thread), each run ends
//!   with `fastrace::flush()`, and the run fails unless the reporter
//!   received every span.
use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use fastrace::collector::{Config, Reporter, SpanContext, SpanRecord};
use fastrace::local::LocalSpan;
use fastrace::Span;
use logforth::diagnostic::FastraceDiagnostic;
use logforth::layout::JsonLayout;
use logforth::record::{Level, LevelFilter, Record};
use logforth::{Append, Diagnostic};
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

/// Counts heap allocations (every thread), for `<case> allocs`.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counter
// is the only addition.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `<case> show`: the stacks write their line to stdout instead of a sink,
/// to see what each one puts on a line.
static SHOW: AtomicBool = AtomicBool::new(false);

fn show() -> bool {
    SHOW.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------- tracing

fn fmt_json() -> Dispatch {
    fn with<W: for<'a> MakeWriter<'a> + Send + Sync + 'static>(writer: W) -> Dispatch {
        Dispatch::new(
            tracing_subscriber::fmt()
                .json()
                .with_writer(writer)
                .finish(),
        )
    }
    if show() {
        with(std::io::stdout)
    } else {
        with(std::io::sink)
    }
}

fn ours() -> Dispatch {
    fn with<W: for<'a> MakeWriter<'a> + Send + Sync + 'static>(writer: W) -> Dispatch {
        let (dispatch, guard) = tracing_correlation::builder()
            .writer(writer)
            .filter("info")
            .build()
            .expect("a valid filter");
        // The guard flushes on drop; the dispatch outlives the run.
        std::mem::forget(guard);
        dispatch
    }
    if show() {
        with(std::io::stdout)
    } else {
        with(std::io::sink)
    }
}

fn json_subscriber() -> Dispatch {
    fn with<W: for<'a> MakeWriter<'a> + Send + Sync + 'static>(writer: W) -> Dispatch {
        Dispatch::new(json_subscriber::fmt().with_writer(writer).finish())
    }
    if show() {
        with(std::io::stdout)
    } else {
        with(std::io::sink)
    }
}

fn tracing_event() {
    tracing::info!(
        user_id = black_box(42),
        path = "/api/items",
        "request handled"
    );
}

/// Runs `tracing_event` `iterations` times inside three entered spans.
fn tracing_in_three_spans(dispatch: &Dispatch, iterations: u64) {
    tracing::dispatcher::with_default(dispatch, || {
        let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
        let _a = a.enter();
        let b = tracing::info_span!("handler", user = 7, admin = false);
        let _b = b.enter();
        let c = tracing::info_span!("db", table = "orders", shard = 3);
        let _c = c.enter();
        for _ in 0..iterations {
            tracing_event();
        }
    });
}

/// Runs `iterations` whole requests: 3 nested spans created and entered,
/// 1 event, everything closed.
fn tracing_requests(dispatch: &Dispatch, iterations: u64) {
    tracing::dispatcher::with_default(dispatch, || {
        for _ in 0..iterations {
            let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
            let _a = a.enter();
            let b = tracing::info_span!("handler", user = black_box(7), admin = false);
            let _b = b.enter();
            let c = tracing::info_span!("db", table = "orders", shard = 3);
            let _c = c.enter();
            tracing_event();
        }
    });
}

// ------------------------------------------------------ fastrace + logforth

/// Spans the fastrace reporter received.
static SPANS_REPORTED: AtomicU64 = AtomicU64::new(0);

/// Receives the finished spans and drops them: the work measured is
/// fastrace's own (recording, handing over, assembling the records), not
/// an exporter's encoding, as our stand-alone stack exports nothing either.
struct CountingReporter;

impl Reporter for CountingReporter {
    fn report(&mut self, spans: Vec<SpanRecord>) {
        SPANS_REPORTED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        drop(black_box(spans));
    }
}

/// A logforth appender like its `Stdout`, writing to `std::io::sink` (or
/// stdout for `show`): the layout renders the line into a new buffer, the
/// newline is appended, the bytes are written.
#[derive(Debug)]
struct SinkAppend {
    layout: JsonLayout,
}

impl Append for SinkAppend {
    fn append(
        &self,
        record: &Record,
        diagnostics: &[Box<dyn Diagnostic>],
    ) -> Result<(), logforth::Error> {
        let mut line = logforth::Layout::format(&self.layout, record, diagnostics)?;
        line.push(b'\n');
        let written = if show() {
            std::io::stdout().write_all(&line)
        } else {
            std::io::sink().write_all(&line)
        };
        written.map_err(logforth::Error::from_io_error)
    }

    fn flush(&self) -> Result<(), logforth::Error> {
        Ok(())
    }
}

/// Installs, once per process, the `log` logger (logforth with the fastrace
/// diagnostic and the JSON layout, level info as the other stacks) and the
/// fastrace reporter.
fn fastrace_logforth() {
    static SET_UP: Once = Once::new();
    SET_UP.call_once(|| {
        let logger = logforth::core::builder()
            .dispatch(|dispatch| {
                dispatch
                    .filter(LevelFilter::MoreSevereEqual(Level::Info))
                    .diagnostic(FastraceDiagnostic::default())
                    .append(SinkAppend {
                        // UTC like the other stacks' timestamps.
                        layout: JsonLayout::default().timezone(jiff::tz::TimeZone::UTC),
                    })
            })
            .build();
        log::set_boxed_logger(Box::new(logforth::bridge::log::LogBridge::new(logger)))
            .expect("no other logger in this process");
        log::set_max_level(log::LevelFilter::Info);
        fastrace::set_reporter(CountingReporter, Config::default());
    });
}

fn log_event() {
    log::info!(user_id = black_box(42), path = "/api/items"; "request handled");
}

/// Fields of the request span.
fn request_properties() -> [(&'static str, Cow<'static, str>); 2] {
    [
        ("method", Cow::Borrowed("GET")),
        ("path", Cow::Borrowed("/orders/42")),
    ]
}

fn handler_properties(user: u64) -> [(&'static str, Cow<'static, str>); 2] {
    [
        ("user", Cow::Owned(user.to_string())),
        ("admin", Cow::Owned(false.to_string())),
    ]
}

fn db_properties() -> [(&'static str, Cow<'static, str>); 2] {
    [
        ("table", Cow::Borrowed("orders")),
        ("shard", Cow::Owned(3.to_string())),
    ]
}

/// Waits until the collector has handed every span to the reporter and
/// checks that it received `expected` more spans than before the run.
fn collected(before: u64, expected: u64) {
    fastrace::flush();
    let received = SPANS_REPORTED.load(Ordering::Relaxed) - before;
    assert_eq!(
        received, expected,
        "fastrace reported {received} spans, {expected} were closed"
    );
}

fn fastrace_in_three_spans(iterations: u64) {
    fastrace_logforth();
    let before = SPANS_REPORTED.load(Ordering::Relaxed);
    {
        let root = Span::root("request", SpanContext::random()).with_properties(request_properties);
        let _root = root.set_local_parent();
        let _handler =
            LocalSpan::enter_with_local_parent("handler").with_properties(|| handler_properties(7));
        let _db = LocalSpan::enter_with_local_parent("db").with_properties(db_properties);
        for _ in 0..iterations {
            log_event();
        }
    }
    collected(before, 3);
}

fn fastrace_requests(iterations: u64) {
    fastrace_logforth();
    let before = SPANS_REPORTED.load(Ordering::Relaxed);
    for i in 0..iterations {
        {
            let root =
                Span::root("request", SpanContext::random()).with_properties(request_properties);
            let _root = root.set_local_parent();
            let _handler = LocalSpan::enter_with_local_parent("handler")
                .with_properties(|| handler_properties(black_box(7)));
            let _db = LocalSpan::enter_with_local_parent("db").with_properties(db_properties);
            log_event();
        }
        // fastrace's collector channel holds 10,240 commands and drops what
        // does not fit; under valgrind (one thread at a time) its collector
        // thread falls behind on long runs. Draining it every 1,000
        // requests does the collector's work on this thread instead (it is
        // counted either way) and keeps every span.
        if i % 1_000 == 999 {
            fastrace::flush();
        }
    }
    collected(before, 3 * iterations);
}

// ------------------------------------------------------------------ cases

type Case = (&'static str, fn(u64));

/// Cases in groups: the first case of each group, `fmt_json_*`, is the
/// reference the others are compared with.
const CASES: &[Case] = &[
    ("fmt_json_event", |n| tracing_in_three_spans(&fmt_json(), n)),
    ("ours_event", |n| tracing_in_three_spans(&ours(), n)),
    ("json_subscriber_event", |n| {
        tracing_in_three_spans(&json_subscriber(), n);
    }),
    ("fastrace_logforth_event", fastrace_in_three_spans),
    ("fmt_json_request", |n| tracing_requests(&fmt_json(), n)),
    ("ours_request", |n| tracing_requests(&ours(), n)),
    ("json_subscriber_request", |n| {
        tracing_requests(&json_subscriber(), n);
    }),
    ("fastrace_logforth_request", fastrace_requests),
];

fn find(name: &str) -> fn(u64) {
    match CASES.iter().find(|(case, _)| *case == name) {
        Some((_, run)) => *run,
        None => panic!("no case {name}; `list` names them"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [list] if list == "list" => {
            for (name, _) in CASES {
                println!("{name}");
            }
        }
        // Allocations per operation, from two run lengths like the
        // instruction counts.
        [name, allocs] if allocs == "allocs" => {
            let run = find(name);
            let count = |n: u64| {
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                run(n);
                ALLOCATIONS.load(Ordering::Relaxed) - before
            };
            let (short, long) = (count(1_000), count(11_000));
            // Counts stay far below 2^52: the conversion is exact.
            #[allow(clippy::cast_precision_loss)]
            let per_op = long.saturating_sub(short) as f64 / 10_000.0;
            println!("{per_op}");
        }
        [name, show_line] if show_line == "show" => {
            SHOW.store(true, Ordering::Relaxed);
            find(name)(1);
        }
        [name, iterations] => find(name)(iterations.parse().expect("a number of iterations")),
        // No arguments: a quick smoke run of every case, as the library's
        // instructions bench does.
        _ => {
            for (_, run) in CASES {
                run(10);
            }
        }
    }
}
