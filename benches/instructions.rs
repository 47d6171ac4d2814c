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
#![allow(missing_docs)]

use std::hint::black_box;

use tracing::Dispatch;
use tracing_correlation::{CorrelationLayer, JsonFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

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

/// Three nested spans and one event, the request of the issue's export
/// figures.
fn request() {
    let a = tracing::info_span!("request", method = "GET", path = "/orders/42");
    let _a = a.enter();
    let b = tracing::info_span!("handler", user = 7, admin = false);
    let _b = b.enter();
    let c = tracing::info_span!("db", table = "orders", shard = 3);
    let _c = c.enter();
    event();
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

fn once(dispatch: &Dispatch, iterations: u64, op: impl Fn()) {
    tracing::dispatcher::with_default(dispatch, || {
        for _ in 0..iterations {
            op();
        }
    });
}

type Case = (&'static str, fn(u64));

const CASES: &[Case] = &[
    ("fmt_json_event", |n| {
        in_three_spans(&plain_json(), n, event);
    }),
    ("ours_event", |n| {
        in_three_spans(&ours("info"), n, event);
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
    // The OTLP log path per event (lines off, so only the log record is
    // made), and lines plus log records; against `fmt_json_event`.
    #[cfg(feature = "otlp")]
    ("otlp_logs_only_event", |n| {
        in_three_spans(&exporting("off", false, true), n, event);
    }),
    #[cfg(feature = "otlp")]
    ("ours_event_and_otlp_log", |n| {
        in_three_spans(&exporting("info", false, true), n, event);
    }),
    // A request (three spans, one event): fmt().json(), stand-alone, spans
    // exported, spans and logs exported.
    ("fmt_json_request", |n| {
        once(&plain_json(), n, request);
    }),
    ("ours_request", |n| {
        once(&ours("info"), n, request);
    }),
    #[cfg(feature = "otlp")]
    ("ours_export_request", |n| {
        once(&exporting("info", true, false), n, request);
    }),
    #[cfg(feature = "otlp")]
    ("ours_export_request_and_logs", |n| {
        once(&exporting("info", true, true), n, request);
    }),
];

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
        [name, iterations] => {
            let iterations: u64 = iterations.parse().expect("a number of iterations");
            let (_, run) = CASES
                .iter()
                .find(|(case, _)| case == name)
                .unwrap_or_else(|| panic!("no case {name}; `list` names them"));
            run(iterations);
        }
        // `cargo bench` with no arguments (or criterion's flags): a quick
        // smoke run of every case, so the target is exercised.
        _ => {
            for (_, run) in CASES {
                run(10);
            }
        }
    }
}
