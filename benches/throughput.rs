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
//! cargo bench --bench throughput -- rounds 21 4000000   # the paired ratios
//! ```
//!
//! `rounds` runs the cases of each ratio in turn, round after round, and
//! prints each ratio's median and range: on a shared machine, cases measured
//! minutes apart see different machines.
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
    let started = wall_nanos();
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
        "RESULT {} {:.3} {started} {}",
        total * 1_000_000_000 / nanos.max(1),
        allocations as f64 / total as f64,
        wall_nanos()
    );
}

/// The wall clock in nanoseconds since the Unix epoch: children started side
/// by side report when they started and ended on a clock they share.
fn wall_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Starts one child: `lines` lines from each of `threads` threads of
/// `case`, its stdout on `/dev/null`.
fn spawn_child(case: &str, threads: usize, lines: usize) -> std::process::Child {
    let exe = std::env::current_exe().expect("bench binary");
    Command::new(exe)
        .args(["child", case, &threads.to_string(), &lines.to_string()])
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .expect("/dev/null"),
        ))
        .stderr(Stdio::piped())
        .spawn()
        .expect("child runs")
}

/// What a child reports: lines per second, allocations per line, and when
/// it started and ended (wall clock, nanoseconds).
struct ChildResult {
    rate: u128,
    allocations: f64,
    started: u128,
    ended: u128,
}

fn child_result(case: &str, child: std::process::Child) -> ChildResult {
    let output = child.wait_with_output().expect("child runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let result = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{case}: {stderr}"));
    let mut parts = result.split_whitespace();
    ChildResult {
        rate: parts.next().unwrap().parse().unwrap(),
        allocations: parts.next().unwrap().parse().unwrap(),
        started: parts.next().unwrap().parse().unwrap(),
        ended: parts.next().unwrap().parse().unwrap(),
    }
}

fn measure(case: &str, threads: usize, lines: usize, runs: usize) -> (u128, f64) {
    let mut results: Vec<(u128, f64)> = (0..runs)
        .map(|_| {
            let result = child_result(case, spawn_child(case, threads, lines));
            (result.rate, result.allocations)
        })
        .collect();
    results.sort_by_key(|r| r.0);
    results[runs / 2]
}

/// Lines per second of `processes` one-thread children of `case` run side
/// by side (`lines` each): all their lines over the time from the first
/// start to the last end, the rule a process with several threads is timed
/// by. (Summing each child's own rate would credit the one that finishes
/// first, on this machine often by a third of the run.)
fn side_by_side(case: &str, processes: usize, lines: usize) -> f64 {
    let children: Vec<_> = (0..processes)
        .map(|_| spawn_child(case, 1, lines))
        .collect();
    let results: Vec<ChildResult> = children
        .into_iter()
        .map(|child| child_result(case, child))
        .collect();
    let first = results.iter().map(|r| r.started).min().unwrap_or(0);
    let last = results.iter().map(|r| r.ended).max().unwrap_or(0);
    (processes * lines) as f64 * 1e9 / last.saturating_sub(first).max(1) as f64
}

/// The ratios of the issue's figures, each from children run in turn within
/// a round, so that a round's cases see the same machine: 2 threads against
/// 1 on the default path, with two one-thread processes side by side
/// (sharing nothing) as what the machine gives two threads; and 1 thread in
/// `Block` against `tracing-appender` and the first release's direct path.
/// Prints each ratio's median and range over the rounds.
fn rounds(count: usize, lines: usize) {
    let mut ratios: [Vec<f64>; 5] = Default::default();
    let rate = |case: &str, threads: usize, lines: usize| {
        child_result(case, spawn_child(case, threads, lines)).rate as f64
    };
    for round in 0..count {
        let one = rate("ours_default", 1, lines);
        let two = rate("ours_default", 2, lines / 2);
        let apart = side_by_side("ours_default", 2, lines / 2);
        let block = rate("ours_block", 1, lines);
        let appender = rate("appender_non_blocking", 1, lines);
        let direct = rate("old_direct_stdout", 1, lines);
        let round_ratios = [
            two / one,
            apart / one,
            two / apart,
            block / appender,
            block / direct,
        ];
        for (all, ratio) in ratios.iter_mut().zip(round_ratios) {
            all.push(ratio);
        }
        eprintln!(
            "round {}: {:.2} {:.2} {:.2} {:.2} {:.2}",
            round + 1,
            round_ratios[0],
            round_ratios[1],
            round_ratios[2],
            round_ratios[3],
            round_ratios[4]
        );
    }
    let names = [
        "default path, 2 threads / 1 thread",
        "two 1-thread processes side by side / 1 thread",
        "default path, 2 threads / two 1-thread processes",
        "block, 1 thread / appender non_blocking",
        "block, 1 thread / old direct stdout",
    ];
    println!("{count} rounds of {lines} lines a case");
    for (name, mut all) in names.into_iter().zip(ratios) {
        all.sort_by(f64::total_cmp);
        let mid = all.len() / 2;
        let median = if all.len() % 2 == 0 {
            (all[mid - 1] + all[mid]) / 2.0
        } else {
            all[mid]
        };
        println!(
            "{name:<48} median {median:.2}x ({:.2}-{:.2}x)",
            all[0],
            all[all.len() - 1]
        );
    }
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
    if let Some(at) = args.iter().position(|a| a == "rounds") {
        let count = args.get(at + 1).map_or(21, |n| n.parse().expect("rounds"));
        let lines = args
            .get(at + 2)
            .map_or(4_000_000, |n| n.parse().expect("lines"));
        rounds(count.max(1), lines);
        return;
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
