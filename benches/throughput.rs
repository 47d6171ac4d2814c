//! Lines per second through whole output paths, into `/dev/null`, for 1 and
//! 2 logging threads, heap allocations per line, and the lines a lossy path
//! did not write.
//!
//! Each measurement is a child process (this binary) whose stdout is
//! `/dev/null`; it times from its first line to the end of the guard's
//! flush, and counts every line logged, written or not (a lossy path that
//! drops lines is faster partly for that: its drops are printed beside
//! it). Five runs per case, the median is kept.
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

/// A subscriber, and what flushes its output at the end and says how many
/// lines it did not write (dropped or lost): a lossy path is faster partly
/// because it skips lines, so each result says how many.
type Built = (Dispatch, Box<dyn FnOnce() -> u64>);

fn fmt_json() -> Built {
    let dispatch = Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stdout)
            .finish(),
    );
    (dispatch, Box::new(|| 0))
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
    (dispatch, Box::new(|| 0))
}

/// `tracing-appender`'s `non_blocking` as `non_blocking(stdout())` makes
/// it: lossy, dropping lines when its 128,000-line channel is full.
fn appender_non_blocking() -> Built {
    appender(true)
}

/// The same, lossless: a full channel blocks the logging thread.
fn appender_lossless() -> Built {
    appender(false)
}

fn appender(lossy: bool) -> Built {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(lossy)
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
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
    let finish = move || {
        drop(guard);
        dropped.dropped_lines() as u64
    };
    (dispatch, Box::new(finish))
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
    let finish = move || {
        let report = guard.shutdown();
        report.dropped() + report.lost()
    };
    (dispatch, Box::new(finish))
}

type Case = (&'static str, fn() -> Built);

const CASES: &[Case] = &[
    ("fmt_json", fmt_json),
    ("old_direct_stdout", old_direct_stdout),
    ("appender_non_blocking", appender_non_blocking),
    ("appender_lossless", appender_lossless),
    ("ours_default", || ours(None)),
    ("ours_block", || ours(Some(WriteMode::Block))),
    ("ours_drop", || ours(Some(WriteMode::Drop))),
    ("ours_direct", || ours(Some(WriteMode::Direct))),
];

/// In the child: log `lines` lines from each of `threads` threads, then
/// flush; prints lines per second, allocations per line, when it started
/// and ended, and the lines not written, on stderr.
fn play(case: &str, threads: usize, lines: usize) {
    let (_, make) = CASES.iter().find(|(name, _)| *name == case).expect("case");
    let (dispatch, finish) = make();
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
    let unwritten = finish();
    let nanos = start.elapsed().as_nanos();
    let total = (threads * lines) as u128;
    eprintln!(
        "RESULT {} {:.3} {started} {} {unwritten}",
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

/// What a child reports: lines per second (lines logged, written or not),
/// allocations per line, when it started and ended (wall clock,
/// nanoseconds), and how many lines it did not write.
struct ChildResult {
    rate: u128,
    allocations: f64,
    started: u128,
    ended: u128,
    unwritten: u64,
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
        unwritten: parts.next().unwrap().parse().unwrap(),
    }
}

/// The median run of `runs`: lines per second, allocations per line, lines
/// not written.
fn measure(case: &str, threads: usize, lines: usize, runs: usize) -> (u128, f64, u64) {
    let mut results: Vec<(u128, f64, u64)> = (0..runs)
        .map(|_| {
            let result = child_result(case, spawn_child(case, threads, lines));
            (result.rate, result.allocations, result.unwritten)
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
/// (sharing nothing) as what the machine gives two threads; 1 thread in
/// `Block` against `tracing-appender` (lossy as `non_blocking` makes it, and
/// lossless) and the first release's direct path; and `Drop` against the
/// lossy appender. Prints each ratio's median and range over the rounds, and
/// the share of lines the lossy paths did not write.
fn rounds(count: usize, lines: usize) {
    const NAMES: [&str; 7] = [
        "default path, 2 threads / 1 thread",
        "two 1-thread processes side by side / 1 thread",
        "default path, 2 threads / two 1-thread processes",
        "block, 1 thread / appender non_blocking (lossy)",
        "block, 1 thread / appender lossless",
        "block, 1 thread / old direct stdout",
        "drop, 1 thread / appender non_blocking (lossy)",
    ];
    let mut ratios: [Vec<f64>; 7] = Default::default();
    let mut unwritten: [Vec<f64>; 2] = Default::default();
    let run = |case: &str, threads: usize, lines: usize| {
        child_result(case, spawn_child(case, threads, lines))
    };
    let rate = |case: &str, threads: usize, lines: usize| run(case, threads, lines).rate as f64;
    for round in 0..count {
        let one = rate("ours_default", 1, lines);
        let two = rate("ours_default", 2, lines / 2);
        let apart = side_by_side("ours_default", 2, lines / 2);
        let block = rate("ours_block", 1, lines);
        let lossy = run("appender_non_blocking", 1, lines);
        let lossless = rate("appender_lossless", 1, lines);
        let direct = rate("old_direct_stdout", 1, lines);
        let drop = run("ours_drop", 1, lines);
        let lossy_rate = lossy.rate as f64;
        let round_ratios = [
            two / one,
            apart / one,
            two / apart,
            block / lossy_rate,
            block / lossless,
            block / direct,
            drop.rate as f64 / lossy_rate,
        ];
        for (all, ratio) in ratios.iter_mut().zip(round_ratios) {
            all.push(ratio);
        }
        unwritten[0].push(lossy.unwritten as f64 / lines as f64);
        unwritten[1].push(drop.unwritten as f64 / lines as f64);
        let shown: Vec<String> = round_ratios.iter().map(|r| format!("{r:.2}")).collect();
        eprintln!(
            "round {}: {} (unwritten: appender {}, drop {})",
            round + 1,
            shown.join(" "),
            lossy.unwritten,
            drop.unwritten
        );
    }
    println!("{count} rounds of {lines} lines a case");
    for (name, all) in NAMES.into_iter().zip(ratios) {
        let (median, low, high) = spread(all);
        println!("{name:<50} median {median:.2}x ({low:.2}-{high:.2}x)");
    }
    for (name, all) in ["appender non_blocking (lossy)", "drop"]
        .into_iter()
        .zip(unwritten)
    {
        let (median, low, high) = spread(all);
        println!(
            "lines not written, {name:<31} median {:.1} % ({:.1}-{:.1} %)",
            median * 100.0,
            low * 100.0,
            high * 100.0
        );
    }
}

/// Median, lowest and highest of `all`.
fn spread(mut all: Vec<f64>) -> (f64, f64, f64) {
    all.sort_by(f64::total_cmp);
    let mid = all.len() / 2;
    let median = if all.len() % 2 == 0 {
        (all[mid - 1] + all[mid]) / 2.0
    } else {
        all[mid]
    };
    (median, all[0], all[all.len() - 1])
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
        "{:<24} {:>8} {:>14} {:>12} {:>10}",
        "case", "threads", "lines/s", "allocs/line", "unwritten"
    );
    for (case, _) in CASES {
        for threads in [1, 2] {
            let (rate, allocations, unwritten) = measure(case, threads, lines, runs);
            println!("{case:<24} {threads:>8} {rate:>14} {allocations:>12.3} {unwritten:>10}");
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
        "ours (block), 1 thread / appender lossless: {:.2}x",
        ratio(("ours_block", 1), ("appender_lossless", 1))
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
