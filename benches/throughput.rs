//! Lines per second through whole output paths, into `/dev/null`, for 1 and
//! 2 logging threads, and heap allocations per line.
//!
//! Each measurement is a child process (this binary) whose stdout is
//! `/dev/null`; it times from its first line to the end of the guard's
//! flush. Five runs per case, the median is kept.
//!
//! ```sh
//! cargo bench --bench throughput            # every case, 1 and 2 threads
//! cargo bench --bench throughput -- quick   # fewer lines, for CI
//! ```
// Figures for a human: precision loss in the ratios is irrelevant.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::process::{Command, Stdio};
use std::time::Instant;

use tracing::Dispatch;
use tracing_correlation::{CorrelationLayer, JsonFormat, Output, WriteMode};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// A subscriber and what must be kept alive (and dropped to flush) with it.
type Built = (Dispatch, Box<dyn Send>);

fn fmt_json() -> Built {
    let dispatch = Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stdout)
            .finish(),
    );
    (dispatch, Box::new(()))
}

/// The first release's default: `fmt::Layer` with our format, writing to
/// std's locked, line-buffered stdout.
fn old_direct_stdout() -> Built {
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(CorrelationLayer::new())
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::new())
                    .with_writer(std::io::stdout),
            ),
    );
    (dispatch, Box::new(()))
}

fn appender_non_blocking() -> Built {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let dispatch = Dispatch::new(
        tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(CorrelationLayer::new())
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::new())
                    .with_writer(writer),
            ),
    );
    (dispatch, Box::new(guard))
}

fn ours(mode: Option<WriteMode>) -> Built {
    let mut output = Output::stdout();
    if let Some(mode) = mode {
        output = output.mode(mode);
    }
    let (dispatch, guard) = tracing_correlation::builder()
        .filter("info")
        .default_output(output)
        .build()
        .expect("valid");
    (dispatch, Box::new(guard))
}

type Case = (&'static str, fn() -> Built);

const CASES: &[Case] = &[
    ("fmt_json", fmt_json),
    ("old_direct_stdout", old_direct_stdout),
    ("appender_non_blocking", appender_non_blocking),
    ("ours_default", || ours(None)),
    ("ours_block", || ours(Some(WriteMode::Block))),
    ("ours_drop", || ours(Some(WriteMode::Drop))),
    ("ours_direct", || ours(Some(WriteMode::Direct))),
];

/// In the child: log `lines` lines from each of `threads` threads, then
/// flush; prints nanoseconds and allocations per line on stderr.
fn play(case: &str, threads: usize, lines: usize) {
    let (_, make) = CASES.iter().find(|(name, _)| *name == case).expect("case");
    let (dispatch, keep) = make();
    let start = Instant::now();
    let allocations_before = common::allocations();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _span = tracing::info_span!("worker", thread).entered();
                    for i in 0..lines {
                        tracing::info!(i, path = "/api/items", "request handled");
                    }
                });
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let allocations = common::allocations() - allocations_before;
    drop(dispatch);
    drop(keep); // flushes
    let nanos = start.elapsed().as_nanos();
    let total = (threads * lines) as u128;
    eprintln!(
        "RESULT {} {:.3}",
        total * 1_000_000_000 / nanos.max(1),
        allocations as f64 / total as f64
    );
}

fn measure(case: &str, threads: usize, lines: usize, runs: usize) -> (u128, f64) {
    let exe = std::env::current_exe().expect("bench binary");
    let mut results: Vec<(u128, f64)> = (0..runs)
        .map(|_| {
            let output = Command::new(&exe)
                .args(["child", case, &threads.to_string(), &lines.to_string()])
                .stdout(Stdio::from(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/null")
                        .expect("/dev/null"),
                ))
                .stderr(Stdio::piped())
                .output()
                .expect("child runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            let result = stderr
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .unwrap_or_else(|| panic!("{case}: {stderr}"));
            let mut parts = result.split_whitespace();
            (
                parts.next().unwrap().parse().unwrap(),
                parts.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    results.sort_by_key(|r| r.0);
    results[runs / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [child, case, threads, lines] = args.as_slice() {
        if child == "child" {
            play(case, threads.parse().unwrap(), lines.parse().unwrap());
            return;
        }
    }
    let quick = args.iter().any(|a| a == "quick");
    let (lines, runs) = if quick { (20_000, 3) } else { (300_000, 5) };
    let mut rates = std::collections::HashMap::new();
    println!(
        "{:<24} {:>8} {:>14} {:>12}",
        "case", "threads", "lines/s", "allocs/line"
    );
    for (case, _) in CASES {
        for threads in [1, 2] {
            let (rate, allocations) = measure(case, threads, lines, runs);
            println!("{case:<24} {threads:>8} {rate:>14} {allocations:>12.3}");
            rates.insert((*case, threads), rate as f64);
        }
    }
    let ratio = |a: (&str, usize), b: (&str, usize)| rates[&a] / rates[&b];
    println!();
    println!(
        "default path, 2 threads / 1 thread: {:.2}x",
        ratio(("ours_default", 2), ("ours_default", 1))
    );
    println!(
        "ours (block), 1 thread / appender non_blocking: {:.2}x",
        ratio(("ours_block", 1), ("appender_non_blocking", 1))
    );
    println!(
        "ours (block), 1 thread / old direct stdout: {:.2}x",
        ratio(("ours_block", 1), ("old_direct_stdout", 1))
    );
    println!(
        "ours (default), 1 thread / fmt().json(): {:.2}x",
        ratio(("ours_default", 1), ("fmt_json", 1))
    );
}
