//! Lines per second handed to an output writing to /dev/null, 1 and 2
//! threads: the new sink in each mode against a per-line locked `LineWriter`
//! (what std's stdout does) and `tracing-appender`'s `non_blocking`. Only the
//! writing is measured: lines are preformatted. `cargo bench --bench sink`.
//!
//! The sink is crate-private; like `tests/sink_allocations.rs`, this binary
//! compiles its source files as its own modules.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    missing_docs,
    clippy::pedantic
)]

#[path = "../src/diagnostics.rs"]
mod diagnostics;
#[path = "../src/sink/drop_report.rs"]
mod drop_report;
#[path = "../src/sink/line_sink.rs"]
mod line_sink;
#[path = "../src/sink/target.rs"]
mod target;
#[path = "../src/format/time.rs"]
mod time;

mod format {
    pub(crate) use super::time;
}

use std::fs::File;
use std::io::{LineWriter, Write};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use drop_report::DropReport;
use line_sink::{LineSink, WriteMode, DEFAULT_CAPACITY_BYTES};
use target::Target;

const LINES_PER_THREAD: usize = 1_000_000;

fn line() -> Vec<u8> {
    let mut line = br#"{"timestamp":"2026-12-03T10:00:00.000000Z","level":"INFO","trace_id":"f7f37759dc27f28f668d928ccefb3272","span_id":"8a11410db088deec","trace_flags":"01","target":"app","message":"handled","status":200,"span":{"name":"request"}}"#.to_vec();
    line.push(b'\n');
    line
}

fn dev_null() -> File {
    File::options()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null")
}

/// Best lines/s of 3 runs of `threads` threads each handing over
/// `LINES_PER_THREAD` lines through `write`, then `finish`.
fn measure<S: Sync>(
    threads: usize,
    setup: impl Fn() -> S,
    write: impl Fn(&S, &[u8]) + Sync,
    finish: impl Fn(S),
) -> f64 {
    let line = line();
    (0..3)
        .map(|_| {
            let state = setup();
            let start = Instant::now();
            thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        for _ in 0..LINES_PER_THREAD {
                            write(&state, &line);
                        }
                    });
                }
            });
            finish(state);
            (threads * LINES_PER_THREAD) as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of tests
    }
    println!(
        "{:<40} {:>14} {:>14} {:>8}",
        "output", "1 thread", "2 threads", "2t/1t"
    );
    let row = |name: &str, rates: [f64; 2]| {
        println!(
            "{name:<40} {:>12.2} M {:>12.2} M {:>7.2}x",
            rates[0] / 1e6,
            rates[1] / 1e6,
            rates[1] / rates[0]
        );
        rates
    };
    let locked = row(
        "Mutex<LineWriter> (std stdout's path)",
        [1, 2].map(|threads| {
            measure(
                threads,
                || Mutex::new(LineWriter::new(dev_null())),
                |w, line| {
                    let _ = w.lock().unwrap().write_all(line);
                },
                drop,
            )
        }),
    );
    let appender = row(
        "tracing-appender non_blocking (lossless)",
        [1, 2].map(|threads| {
            measure(
                threads,
                || {
                    tracing_appender::non_blocking::NonBlockingBuilder::default()
                        .lossy(false)
                        .finish(dev_null())
                },
                |(w, _), line| {
                    let _ = w.clone().write_all(line);
                },
                drop,
            )
        }),
    );
    for (name, mode) in [
        ("sink Block", WriteMode::Block),
        ("sink Drop", WriteMode::Drop),
        ("sink Direct", WriteMode::Direct),
    ] {
        let rates = row(
            name,
            [1, 2].map(|threads| {
                measure(
                    threads,
                    || {
                        LineSink::new(
                            Target::writer(dev_null()),
                            mode,
                            DEFAULT_CAPACITY_BYTES,
                            DropReport::Json,
                        )
                    },
                    LineSink::write_line,
                    |sink| {
                        let report = sink.shutdown(Duration::from_secs(60));
                        let handed = (threads * LINES_PER_THREAD) as u64;
                        assert_eq!(report.written + report.dropped + report.lost, handed);
                        if report.dropped > 0 {
                            // Lines are handed over faster than any formatter
                            // makes them: Drop mode drops most of them, so its
                            // rate is not a write rate.
                            println!("    ({} of {handed} lines written)", report.written);
                        }
                    },
                )
            }),
        );
        println!(
            "{:<40} {:>12.2}x {:>13.2}x   (vs locked LineWriter; vs non_blocking: {:.2}x, {:.2}x)",
            "",
            rates[0] / locked[0],
            rates[1] / locked[1],
            rates[0] / appender[0],
            rates[1] / appender[1]
        );
    }
}
