//! Instruction counts per operation, the stable figure on a shared machine.
//!
//! Each case builds its subscriber, then runs one operation N times. Run
//! it under callgrind twice with different N and divide the difference, so
//! set-up cost cancels out — `scripts/instructions.sh` does exactly that for
//! every case and prints the ratios:
//!
//! ```sh
//! scripts/instructions.sh            # needs valgrind
//! cargo bench --bench instructions -- list
//! cargo bench --bench instructions -- ours_event 1000
//! ```
//!
//! The OTLP cases (`otlp_logs_only_event`, `ours_event_and_otlp_log`,
//! `ours_export_request*`) need `--features otlp`, which the script passes.
#![allow(missing_docs, unsafe_code)]

use std::hint::black_box;

use tracing::Dispatch;
use tracing_correlation::opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_correlation::{CorrelationLayer, JsonFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

fn plain_json() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::sink)
            .finish(),
    )
}

fn ours(filter: &str) -> Dispatch {
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter(filter)
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

/// The first release's stack: one global filter in front of everything.
fn global_filter(filter: &str) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(CorrelationLayer::new())
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::new())
                    .with_writer(std::io::sink),
            ),
    )
}

/// Inside three entered spans with two fields each.
fn in_three_spans(dispatch: &Dispatch, iterations: u64, op: impl Fn()) {
    tracing::dispatcher::with_default(dispatch, || {
        let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
        let _a = a.enter();
        let b = tracing::info_span!("handler", user = 7, admin = false);
        let _b = b.enter();
        let c = tracing::info_span!("db", table = "orders", shard = 3);
        let _c = c.enter();
        for _ in 0..iterations {
            op();
        }
    });
}

fn event() {
    tracing::info!(
        user_id = black_box(42),
        path = "/api/items",
        "request handled"
    );
}

fn disabled_debug() {
    tracing::debug!(user_id = black_box(42), "cache probe");
}

fn disabled_info() {
    tracing::info!(user_id = black_box(42), "request handled");
}

/// A whole request: 3 nested spans with 2 fields each, entered, 1 event,
/// everything closed.
fn request() {
    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
    let _a = a.enter();
    let b = tracing::info_span!("handler", user = black_box(7), admin = false);
    let _b = b.enter();
    let c = tracing::info_span!("db", table = "orders", shard = 3);
    let _c = c.enter();
    event();
}

/// One child span with one field: created, entered, exited, closed.
fn child_span() {
    let span = tracing::info_span!("child", n = black_box(1));
    let _entered = span.enter();
}

/// An event with 30 fields besides its message.
fn wide_event() {
    tracing::info!(
        f00 = black_box(0),
        f01 = 1,
        f02 = "two",
        f03 = true,
        f04 = 4.5,
        f05 = 5,
        f06 = "six",
        f07 = false,
        f08 = 8,
        f09 = "nine",
        f10 = 10,
        f11 = 11,
        f12 = "twelve",
        f13 = true,
        f14 = 14,
        f15 = 15,
        f16 = "sixteen",
        f17 = 17,
        f18 = false,
        f19 = 19,
        f20 = 20,
        f21 = "twenty-one",
        f22 = 22,
        f23 = true,
        f24 = 24,
        f25 = 25,
        f26 = "twenty-six",
        f27 = 27,
        f28 = 28,
        f29 = "twenty-nine",
        "wide event"
    );
}

fn bare_registry() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

/// The registry with a layer that does nothing. A bare registry never
/// removes a closed span (only `Layered` asks it to, through its close
/// guard; tokio-rs/tracing#900), so its slab grows instead: this is what any
/// layered registry pays per span before a layer does anything.
fn registry_with_noop_layer() -> Dispatch {
    struct Noop;
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Noop {}
    Dispatch::new(tracing_subscriber::registry().with(Noop))
}

fn registry_with_layer() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry().with(CorrelationLayer::new()))
}

/// Our format with exactly `fmt().json()`'s content (current span and span
/// list) plus the ids.
fn ours_span_list() -> Dispatch {
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .json(JsonFormat::new().with_span_list(true))
        .filter("info")
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

/// The builder at `filter`, keeping what it does not write until the
/// request fails (bounds large enough that no line of the run is dropped).
fn ours_buffered(filter: &str) -> (Dispatch, tracing_correlation::LoggingGuard) {
    tracing_correlation::builder()
        .writer(std::io::sink)
        .filter(filter)
        .buffer_until_error(
            tracing_correlation::BufferConfig::new(tracing::Level::DEBUG)
                .per_trace_bytes(8 << 20)
                .total_bytes(64 << 20),
        )
        .build()
        .expect("valid")
}

/// The builder at `filter` with per-request verbosity from baggage.
fn ours_raisable(filter: &str) -> Dispatch {
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter(filter)
        .verbosity_from_baggage(tracing_correlation::VerbosityConfig::new("log.level"))
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

/// Ids from the OpenTelemetry SDK: a batch processor with an in-memory
/// exporter, as in production but without a network.
/// The batch processor is kept quiet (see `quiet_batch_processors`): what is
/// counted is the emitting thread's work. With its defaults, the export
/// thread's batches, and the spans it drops when it falls behind, depend on
/// timing, and the figure moved by 7 % between runs.
fn ours_sdk() -> Dispatch {
    #[cfg(feature = "otlp")]
    quiet_batch_processors();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(InMemorySpanExporter::default())
        .build();
    let (dispatch, guard) = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter("info")
        .tracer_provider(provider)
        .build()
        .expect("valid");
    std::mem::forget(guard);
    dispatch
}

/// No request leaves the process during a measured run: the batch
/// processors' queues hold every item of the longest run and their timers
/// never fire, so what is counted is the emitting thread's work (the
/// conversion and the hand-off to the queue), not a failing export.
#[cfg(feature = "otlp")]
fn quiet_batch_processors() {
    for (name, value) in [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "40000"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "40000"),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "40000"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "40000"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "3600000"),
    ] {
        std::env::set_var(name, value);
    }
}

/// The builder exporting over OTLP to a closed local port (spans, logs or
/// both), lines written to a sink with `lines` as their filter.
#[cfg(feature = "otlp")]
fn exporting(lines: &str, spans: bool, logs: bool) -> Dispatch {
    use tracing_correlation::{ExportConfig, ExportMode, OtlpLogs};
    quiet_batch_processors();
    let mode = if spans {
        ExportMode::Otlp
    } else {
        ExportMode::Standalone
    };
    let config = ExportConfig::from_lookup(|_| None)
        .with_mode(mode)
        .with_endpoint("http://127.0.0.1:9/v1/traces")
        .with_logs_endpoint("http://127.0.0.1:9/v1/logs");
    let mut builder = tracing_correlation::builder()
        .writer(std::io::sink)
        .filter(lines)
        .export(config);
    if logs {
        builder = builder.otlp_logs(OtlpLogs::new().filter("info"));
    }
    let (dispatch, guard) = builder.build().expect("valid");
    std::mem::forget(guard);
    dispatch
}

/// Runs `op` outside any span.
fn outside_spans(dispatch: &Dispatch, iterations: u64, op: impl Fn()) {
    tracing::dispatcher::with_default(dispatch, || {
        for _ in 0..iterations {
            op();
        }
    });
}

/// Runs `op` inside one entered parent span.
fn in_one_span(dispatch: &Dispatch, iterations: u64, op: impl Fn()) {
    tracing::dispatcher::with_default(dispatch, || {
        let parent = tracing::info_span!("request", method = "GET");
        let _parent = parent.enter();
        for _ in 0..iterations {
            op();
        }
    });
}

/// Runs `op` in three spans of a request that is not raised, while another
/// request of the process is raised (so raisable callsites are `sometimes`).
/// `beside_a_raised_request` with the global dispatcher.
fn beside_a_raised_request_global(iterations: u64, op: impl Fn()) {
    use tracing_correlation::opentelemetry::baggage::BaggageExt as _;
    use tracing_correlation::opentelemetry::{Context, KeyValue};
    let raised = {
        let _marked = Context::current_with_baggage([KeyValue::new("log.level", "debug")]).attach();
        tracing::info_span!("raised request")
    };
    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
    let _a = a.enter();
    let b = tracing::info_span!("handler", user = 7, admin = false);
    let _b = b.enter();
    let c = tracing::info_span!("db", table = "orders", shard = 3);
    let _c = c.enter();
    for _ in 0..iterations {
        op();
    }
    drop(raised);
}

fn beside_a_raised_request(dispatch: &Dispatch, iterations: u64, op: impl Fn()) {
    use tracing_correlation::opentelemetry::baggage::BaggageExt as _;
    use tracing_correlation::opentelemetry::{Context, KeyValue};
    let raised = tracing::dispatcher::with_default(dispatch, || {
        let _marked = Context::current_with_baggage([KeyValue::new("log.level", "debug")]).attach();
        tracing::info_span!("raised request")
    });
    in_three_spans(dispatch, iterations, op);
    tracing::dispatcher::with_default(dispatch, || drop(raised));
}

/// The least any subscriber can cost a `debug!` it refuses while debug
/// callsites are `sometimes` (as they are, process-wide, while any request
/// is raised): the macro's checks, the dispatcher lookup and one `enabled`
/// call answering `false` at once.
struct RefuseAll;

impl tracing::Subscriber for RefuseAll {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

type Case = (&'static str, fn(u64));

/// Cases in groups: the first case of each group is the reference the
/// others are compared with.
const CASES: &[Case] = &[
    ("fmt_json_event", |n| {
        in_three_spans(&plain_json(), n, event);
    }),
    ("ours_event", |n| {
        in_three_spans(&ours("info"), n, event);
    }),
    ("ours_event_span_list", |n| {
        in_three_spans(&ours_span_list(), n, event);
    }),
    ("ours_sdk_event", |n| {
        in_three_spans(&ours_sdk(), n, event);
    }),
    // The OTLP log path per event (lines off, so only the log record is
    // made), and lines plus log records.
    #[cfg(feature = "otlp")]
    ("otlp_logs_only_event", |n| {
        in_three_spans(&exporting("off", false, true), n, event);
    }),
    #[cfg(feature = "otlp")]
    ("ours_event_and_otlp_log", |n| {
        in_three_spans(&exporting("info", false, true), n, event);
    }),
    ("fmt_json_request", |n| {
        outside_spans(&plain_json(), n, request);
    }),
    ("ours_request", |n| {
        outside_spans(&ours("info"), n, request);
    }),
    ("ours_sdk_request", |n| {
        outside_spans(&ours_sdk(), n, request);
    }),
    // Exported over OTLP (the batch queues hold everything): spans, then
    // spans and log records.
    #[cfg(feature = "otlp")]
    ("ours_export_request", |n| {
        outside_spans(&exporting("info", true, false), n, request);
    }),
    #[cfg(feature = "otlp")]
    ("ours_export_request_and_logs", |n| {
        outside_spans(&exporting("info", true, true), n, request);
    }),
    ("bare_registry_span", |n| {
        in_one_span(&bare_registry(), n, child_span);
    }),
    ("noop_layer_span", |n| {
        in_one_span(&registry_with_noop_layer(), n, child_span);
    }),
    ("correlation_layer_span", |n| {
        in_one_span(&registry_with_layer(), n, child_span);
    }),
    ("ours_span", |n| {
        in_one_span(&ours("info"), n, child_span);
    }),
    ("fmt_json_wide_event", |n| {
        in_three_spans(&plain_json(), n, wide_event);
    }),
    ("ours_wide_event", |n| {
        in_three_spans(&ours("info"), n, wide_event);
    }),
    ("global_filter_warn_disabled_debug", |n| {
        in_three_spans(&global_filter("warn"), n, disabled_debug);
    }),
    ("ours_warn_disabled_debug", |n| {
        in_three_spans(&ours("warn"), n, disabled_debug);
    }),
    ("global_filter_warn_disabled_info", |n| {
        in_three_spans(&global_filter("warn"), n, disabled_info);
    }),
    ("ours_warn_disabled_info", |n| {
        in_three_spans(&ours("warn"), n, disabled_info);
    }),
    // Error-triggered buffering: a DEBUG line written vs the same line kept
    // in the request's buffer (with `INSTRUCTIONS_STATS` set, the buffered
    // case prints the bytes it holds per line on stderr).
    ("ours_debug_written", |n| {
        in_three_spans(&ours("debug"), n, buffered_debug);
    }),
    ("ours_debug_buffered", |n| {
        let (dispatch, guard) = ours_buffered("info");
        in_three_spans(&dispatch, n, buffered_debug);
        if std::env::var_os("INSTRUCTIONS_STATS").is_some() {
            let stats = guard.buffer_stats(0).expect("buffered output");
            // The request closed: its lines were discarded, its vector
            // pooled (or freed); the high-water mark is what it held.
            eprintln!(
                "buffered lines {} most bytes held {} ({} per line, vector slack included)",
                stats.buffered,
                stats.max_held_bytes,
                stats.max_held_bytes / stats.buffered.max(1)
            );
        }
        std::mem::forget(guard);
    }),
    // Per-request verbosity: a DEBUG line at `warn` in a request that is
    // not raised, with no raised request open (compare with
    // ours_warn_disabled_debug), and while another one is.
    ("ours_raisable_warn_disabled_debug", |n| {
        in_three_spans(&ours_raisable("warn"), n, disabled_debug);
    }),
    // What configuring the raise costs a written line (none open).
    ("ours_raisable_event", |n| {
        in_three_spans(&ours_raisable("info"), n, event);
    }),
    ("ours_raisable_warn_debug_beside_a_raised_request", |n| {
        beside_a_raised_request(&ours_raisable("warn"), n, disabled_debug);
    }),
    // As a service runs it: the dispatcher installed globally (a scoped one
    // costs a thread-local lookup per `sometimes` callsite).
    (
        "ours_raisable_warn_debug_beside_a_raised_request_global",
        |n| {
            // Set once per process (the allocation count runs a case twice).
            let _ = tracing::dispatcher::set_global_default(ours_raisable("warn"));
            beside_a_raised_request_global(n, disabled_debug);
        },
    ),
    // The floor of the case above for any design on tracing 0.1: the same
    // `debug!`, refused by a global subscriber as cheaply as possible.
    ("floor_sometimes_refused_debug_global", |n| {
        let _ = tracing::subscriber::set_global_default(RefuseAll);
        for _ in 0..n {
            disabled_debug();
        }
    }),
];

fn find(name: &str) -> fn(u64) {
    CASES.iter().find(|(case, _)| *case == name).map_or_else(
        || panic!("no case {name}; `list` names them"),
        |(_, run)| *run,
    )
}

/// The DEBUG line of the buffering cases: the fields of `event`.
fn buffered_debug() {
    tracing::debug!(
        user_id = black_box(42),
        path = "/api/items",
        "request handled"
    );
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
                let before = common::allocations();
                run(n);
                common::allocations() - before
            };
            let (short, long) = (count(1_000), count(11_000));
            // Per operation, to two decimals.
            let hundredths = long.saturating_sub(short) / 100;
            println!("{}.{:02}", hundredths / 100, hundredths % 100);
        }
        [name, iterations] => find(name)(iterations.parse().expect("a number of iterations")),
        // `cargo bench` with no arguments (or criterion's flags): a quick
        // smoke run of every case, so the target is exercised.
        _ => {
            for (_, run) in CASES {
                run(10);
            }
        }
    }
}
