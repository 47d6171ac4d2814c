use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::drop_report;
use super::line_sink::{
    count_lines, lane_buffers, Batch, Chunk, WriterScope, FAIL_SPAWN, MARK_BYTES,
};
use super::target::{write_parts_with_progress, Outcome, Output};
use super::*;

const MODES: [WriteMode; 3] = [WriteMode::Block, WriteMode::Drop, WriteMode::Direct];

/// An in-memory target whose behaviour each test chooses.
#[derive(Clone, Default)]
struct Memory {
    bytes: Arc<Mutex<Vec<u8>>>,
    writes: Arc<AtomicUsize>,
    /// Sleep before taking each write (a slow reader).
    delay: Duration,
    /// Take at most this many bytes per write (0: all).
    chunk: usize,
}

impl Memory {
    fn slow(delay: Duration) -> Memory {
        Memory {
            delay,
            ..Memory::default()
        }
    }

    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
    }

    fn line_count(&self) -> usize {
        count_lines(&self.bytes.lock().unwrap()) as usize
    }

    fn target(&self) -> Target {
        Target::writer(self.clone())
    }
}

impl Write for Memory {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            thread::sleep(self.delay);
        }
        let n = if self.chunk == 0 {
            buf.len()
        } else {
            buf.len().min(self.chunk)
        };
        self.bytes.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A target that takes `open_writes` writes normally, then blocks the next
/// one until the test releases it, and from then on fails with `EPIPE` (a
/// reader that stalls, then goes away).
#[derive(Clone)]
struct Stalling {
    memory: Memory,
    open_writes: usize,
    entered: Arc<Mutex<Option<mpsc::Sender<()>>>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    broken: Arc<AtomicBool>,
}

/// What the test holds to watch and release a [`Stalling`] target.
struct Gate {
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn stalling(open_writes: usize, then_broken: bool) -> (Stalling, Gate) {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let target = Stalling {
        memory: Memory::default(),
        open_writes,
        entered: Arc::new(Mutex::new(Some(entered_tx))),
        release: Arc::new(Mutex::new(release_rx)),
        broken: Arc::new(AtomicBool::new(then_broken)),
    };
    (target, Gate { entered, release })
}

impl Write for Stalling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.memory.writes.load(Ordering::SeqCst) == self.open_writes {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
                let _ = self.release.lock().unwrap().recv();
            }
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
        }
        self.memory.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `t<thread> n<seq> <payload>\n`, the payload's length and bytes derived
/// from (thread, seq) so a torn or mixed line cannot pass.
fn make_line(thread: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut line = format!("t{thread} n{seq} {len} ").into_bytes();
    line.extend((0..len).map(|i| b'a' + ((thread * 7 + seq + i) % 26) as u8));
    line.push(b'\n');
    line
}

/// Checks every line is whole and each thread's lines keep their order;
/// returns how many lines each thread has in the output.
fn check_lines(text: &str) -> HashMap<usize, Vec<usize>> {
    let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let thread: usize = parts.next().unwrap()[1..].parse().expect(line);
        let seq: usize = parts.next().unwrap()[1..].parse().expect(line);
        let len: usize = parts.next().unwrap().parse().expect(line);
        let payload = parts.next().unwrap_or("");
        assert_eq!(
            format!("{line}\n").as_bytes(),
            make_line(thread, seq, len),
            "torn line"
        );
        assert_eq!(payload.len(), len);
        let order = seen.entry(thread).or_default();
        assert!(
            order.last().map_or(true, |&last| last < seq),
            "thread {thread}: {seq} after {order:?}"
        );
        order.push(seq);
    }
    seen
}

/// Lengths from a fixed seed: mostly short, some longer than `capacity`.
fn lengths(seed: u64, count: usize, capacity: usize) -> Vec<usize> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 50 == 0 {
                capacity + (x as usize >> 8) % (3 * capacity)
            } else {
                (x as usize >> 8) % 300
            }
        })
        .collect()
}

fn run_threads(sink: &LineSink, threads: usize, per_thread: usize, capacity: usize) -> u64 {
    thread::scope(|scope| {
        for t in 0..threads {
            let sink = sink.clone();
            scope.spawn(move || {
                for (seq, len) in lengths(t as u64 + 1, per_thread, capacity)
                    .into_iter()
                    .enumerate()
                {
                    sink.write_line(&make_line(t, seq, len));
                }
            });
        }
    });
    (threads * per_thread) as u64
}

/// Runs `f` on a thread and fails the test if it does not finish in time.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("did not finish in time: deadlock?")
}

#[test]
fn many_threads_lines_arrive_whole_in_order_and_counted_exactly() {
    for mode in MODES {
        let memory = Memory::default();
        let capacity = 4096;
        let sink = LineSink::new(memory.target(), mode, capacity, DropReport::Json);
        let handed = run_threads(&sink, 8, 1500, capacity);
        let report = sink.shutdown(Duration::from_secs(10));
        let text = memory.text();
        // Drop-mode report lines are JSON; the rest are ours.
        let (reports, app): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with('{'));
        let seen = check_lines(&(app.join("\n") + "\n"));
        let written: usize = seen.values().map(Vec::len).sum();
        assert_eq!(report.written, written as u64, "{mode:?}");
        assert_eq!(report.lost, 0, "{mode:?}");
        assert_eq!(
            report.written + report.dropped + report.lost,
            handed,
            "{mode:?}"
        );
        if mode == WriteMode::Drop {
            let reported: u64 = reports.iter().map(|l| dropped_in(l)).sum();
            assert_eq!(reported, report.dropped);
        } else {
            assert!(reports.is_empty(), "{mode:?}");
            assert_eq!(report.dropped, 0, "{mode:?}");
            for order in seen.values() {
                assert_eq!(*order, (0..1500).collect::<Vec<_>>(), "{mode:?}");
            }
        }
    }
}

/// A line logged after another — on another thread that heard of the first
/// one (here through a channel; in a service, a task resumed on another
/// worker thread) — is written after it. Two threads take turns: each logs
/// the next number, then hands the turn over. Any queue per thread would
/// write a thread's run of lines together and break the sequence.
#[test]
fn lines_logged_in_turn_on_two_threads_are_written_in_that_order() {
    const TURNS: usize = 4000;
    for mode in MODES {
        let memory = Memory::default();
        let sink = LineSink::new(memory.target(), mode, 64 * 1024, DropReport::Json);
        let (to_b, b_turn) = mpsc::channel::<usize>();
        let (to_a, a_turn) = mpsc::channel::<usize>();
        thread::scope(|scope| {
            let a_sink = sink.clone();
            scope.spawn(move || {
                let mut seq = 0;
                while seq < TURNS {
                    a_sink.write_line(&make_line(0, seq, seq % 40));
                    to_b.send(seq + 1).unwrap();
                    seq = match a_turn.recv() {
                        Ok(next) => next,
                        Err(_) => break,
                    };
                }
            });
            let b_sink = sink.clone();
            scope.spawn(move || {
                while let Ok(seq) = b_turn.recv() {
                    if seq >= TURNS {
                        break;
                    }
                    b_sink.write_line(&make_line(1, seq, seq % 40));
                    if to_a.send(seq + 1).is_err() {
                        break;
                    }
                }
            });
        });
        let report = sink.shutdown(Duration::from_secs(10));
        assert_eq!(report.written, TURNS as u64, "{mode:?}");
        let text = memory.text();
        check_lines(&text);
        let order: Vec<usize> = text
            .lines()
            .map(|line| line.split(' ').nth(1).unwrap()[1..].parse().unwrap())
            .collect();
        assert_eq!(order, (0..TURNS).collect::<Vec<_>>(), "{mode:?}");
    }
}

/// The `dropped_lines` of a JSON report line, checking the rest of it.
fn dropped_in(line: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(line).expect(line);
    let n = value["dropped_lines"].as_u64().expect(line);
    assert_eq!(value["level"], "WARN");
    assert_eq!(value["target"], "tracing_correlation");
    assert_eq!(value["message"], format!("{n} {}", drop_report::MESSAGE));
    let timestamp = value["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), 27, "{timestamp}");
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .expect(timestamp);
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Lines handed = written + dropped + lost, in every mode, whatever the
    /// target does (takes all, takes a few bytes at a time, fails midway).
    #[test]
    fn every_line_is_counted_once(
        mode in prop::sample::select(MODES.to_vec()),
        threads in 1usize..4,
        per_thread in 0usize..200,
        capacity in 64usize..2048,
        chunk in prop::sample::select(vec![0usize, 7, 100]),
        fail_after in prop::option::of(0usize..20_000),
    ) {
        let memory = Memory { chunk, ..Memory::default() };
        let limit = fail_after.unwrap_or(usize::MAX);
        let target = FailingAfter { memory: memory.clone(), limit };
        let sink = LineSink::new(Target::writer(target), mode, capacity, DropReport::Text);
        let handed = run_threads(&sink, threads, per_thread, capacity);
        let report = sink.shutdown(Duration::from_secs(10));
        prop_assert_eq!(report.written + report.dropped + report.lost, handed);
        let text = memory.text();
        // Complete lines only: a failure can leave part of one at the end.
        let mut complete: Vec<&str> = text.split('\n').collect();
        complete.pop();
        let app = complete.iter().filter(|l| !l.contains(drop_report::MESSAGE)).count();
        // Lines the target took whole are exactly the lines counted written.
        prop_assert_eq!(report.written, app as u64);
        if fail_after.is_none() {
            prop_assert_eq!(report.lost, 0);
        }
        if mode != WriteMode::Drop {
            prop_assert_eq!(report.dropped, 0);
        }
    }
}

/// Takes bytes until `limit` in total, then fails every write with ENOSPC.
struct FailingAfter {
    memory: Memory,
    limit: usize,
}

impl Write for FailingAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let so_far = self.memory.bytes.lock().unwrap().len();
        if so_far >= self.limit {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        let room = (self.limit - so_far).min(buf.len());
        self.memory.write(&buf[..room])
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_slow_reader_gets_every_line_before_shutdown_returns() {
    let memory = Memory::slow(Duration::from_millis(2));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 1024, DropReport::Json);
    let handed = run_threads(&sink, 4, 300, 1024);
    let report = sink.shutdown(Duration::from_secs(30));
    assert_eq!(
        report,
        OutputReport {
            written: handed,
            dropped: 0,
            lost: 0
        }
    );
    assert_eq!(memory.line_count() as u64, handed);
    check_lines(&memory.text());
    // Batched: far fewer writes than lines (each write waits 2 ms, during
    // which the other threads fill the buffer).
    let writes = memory.writes.load(Ordering::SeqCst) as u64;
    assert!(writes < handed / 2, "{writes} writes for {handed} lines");
}

#[test]
fn shutdown_timeout_bounds_the_wait_and_counts_exactly_the_lines_not_written() {
    // The reader takes 3 writes, stalls, then goes away.
    let (target, gate) = stalling(3, true);
    let memory = target.memory.clone();
    // Room for every line: the test thread must not wait for it.
    let sink = LineSink::new(
        Target::writer(target),
        WriteMode::Block,
        4096,
        DropReport::Json,
    );
    for seq in 0..40 {
        sink.write_line(&make_line(0, seq, 10));
        if seq < 3 {
            // One line per batch until the stall.
            assert!(sink.flush(Duration::from_secs(5)));
        }
    }
    gate.entered.recv_timeout(Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let report = sink.shutdown(Duration::from_millis(100));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < Duration::from_millis(600), "{waited:?}");
    assert_eq!(
        report,
        OutputReport {
            written: 3,
            dropped: 0,
            lost: 37
        }
    );
    // The worker is still inside the stalled write: a line logged now
    // cannot be written and says so.
    sink.write_line(&make_line(0, 40, 10));
    assert_eq!(sink.report().lost, 38);
    // The reader goes away; the stalled write fails, nothing more arrives.
    gate.release.send(()).unwrap();
    wait_for(|| sink.worker_stopped());
    assert_eq!(memory.line_count(), 3);
    assert_eq!(check_lines(&memory.text())[&0], vec![0, 1, 2]);
    // Counts do not move after the report; shutdown again returns the same.
    assert_eq!(sink.shutdown(Duration::from_secs(1)).lost, 38);
}

#[test]
fn shutdown_timeout_with_a_slow_reader_returns_in_time() {
    let memory = Memory::slow(Duration::from_millis(20));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 64, DropReport::Json);
    // 64-byte buffer, ~20-byte lines: at most 3 lines per 20 ms write.
    let producer = {
        let sink = sink.clone();
        thread::spawn(move || {
            for seq in 0..60 {
                sink.write_line(&make_line(0, seq, 2));
            }
        })
    };
    thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let report = sink.shutdown(Duration::from_millis(80));
    let waited = start.elapsed();
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    producer.join().unwrap();
    let report_after = sink.report();
    // Lines handed after the shutdown are written directly or, while the
    // worker is still stuck in its write, counted as lost.
    assert_eq!(
        report_after.written + report_after.lost,
        60,
        "{report_after:?}"
    );
    assert!(report.lost > 0, "{report:?}");
    wait_for(|| sink.worker_stopped());
    // What the report called written is in the output; at most the one batch
    // the worker was writing at the deadline (≤ 64 bytes of lines of at least
    // 11: 5 lines) arrived after it.
    let seen = memory.line_count() as u64;
    let after = sink.report();
    assert!(seen >= after.written, "{seen} {after:?}");
    assert!(seen <= after.written + 5, "{seen} {after:?}");
}

fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not reached");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn drop_mode_counts_exactly_and_reports_when_writing_resumes() {
    let (target, gate) = stalling(1, false);
    let memory = target.memory.clone();
    // Lines of one length, 10 to a buffer (each also costs its place in
    // the queue).
    let len = make_line(0, 10, 9).len() + MARK_BYTES;
    let sink = LineSink::new(
        Target::writer(target),
        WriteMode::Drop,
        10 * len,
        DropReport::Json,
    );
    sink.write_line(&make_line(0, 0, 10));
    assert!(sink.flush(Duration::from_secs(5)));
    // The worker takes the next line and stalls inside its write.
    sink.write_line(&make_line(0, 1, 10));
    gate.entered.recv_timeout(Duration::from_secs(5)).unwrap();
    // 10 fit, 40 are dropped.
    for seq in 10..60 {
        let line = make_line(0, seq, 9);
        assert_eq!(line.len() + MARK_BYTES, len);
        sink.write_line(&line);
    }
    assert_eq!(sink.report().dropped, 40);
    gate.release.send(()).unwrap();
    assert!(sink.flush(Duration::from_secs(5)));
    // The report line follows the batch that was waiting.
    wait_for(|| memory.text().lines().count() == 13);
    let text = memory.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(dropped_in(lines[12]), 40);
    let seen = check_lines(&(lines[..12].join("\n") + "\n"));
    assert_eq!(
        seen[&0],
        [0, 1].into_iter().chain(10..20).collect::<Vec<_>>()
    );
    // Writing goes on; no second report for the same drops.
    sink.write_line(&make_line(0, 100, 3));
    let report = sink.shutdown(Duration::from_secs(5));
    assert_eq!(
        report,
        OutputReport {
            written: 13,
            dropped: 40,
            lost: 0
        }
    );
    let text = memory.text();
    assert_eq!(text.lines().filter(|l| l.starts_with('{')).count(), 1);
}

#[test]
fn drop_mode_reports_drops_at_shutdown_in_text() {
    let (target, gate) = stalling(0, false);
    let memory = target.memory.clone();
    let len = make_line(0, 10, 9).len() + MARK_BYTES;
    let sink = LineSink::new(
        Target::writer(target),
        WriteMode::Drop,
        5 * len,
        DropReport::Text,
    );
    sink.write_line(&make_line(0, 0, 10));
    gate.entered.recv_timeout(Duration::from_secs(5)).unwrap();
    for seq in 10..30 {
        sink.write_line(&make_line(0, seq, 9)); // 5 fit
    }
    gate.release.send(()).unwrap();
    let report = sink.shutdown(Duration::from_secs(5));
    assert_eq!(
        report,
        OutputReport {
            written: 6,
            dropped: 15,
            lost: 0
        }
    );
    let text = memory.text();
    let last = text.lines().last().unwrap();
    let (timestamp, rest) = last.split_at(27);
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .expect(timestamp);
    assert_eq!(
        rest,
        "  WARN tracing_correlation: 15 log lines dropped: the output could not keep up dropped_lines=15"
    );
    assert_eq!(text.lines().count(), 7);
}

/// Fails every write, counting the calls.
#[derive(Clone, Default)]
struct AlwaysFails(Arc<AtomicUsize>);

impl Write for AlwaysFails {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_target_loses_lines_without_panicking_or_spinning() {
    for mode in MODES {
        let calls = AlwaysFails::default();
        let sink = LineSink::new(Target::writer(calls.clone()), mode, 1024, DropReport::Json);
        let handed = run_threads(&sink, 4, 500, 1024);
        assert!(sink.flush(Duration::from_secs(5)));
        let report = sink.shutdown(Duration::from_secs(5));
        assert_eq!(report.written, 0, "{mode:?}");
        assert_eq!(report.lost + report.dropped, handed, "{mode:?}");
        if mode != WriteMode::Drop {
            assert_eq!(report.lost, handed, "{mode:?}");
        }
        // One attempt per batch (or per line in Direct), never a retry loop.
        let calls = calls.0.load(Ordering::SeqCst) as u64;
        assert!(calls <= report.lost, "{mode:?}: {calls} writes");
    }
}

#[test]
fn dev_full_loses_lines_without_panicking() {
    for mode in MODES {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux");
        // Room for every line: nothing is dropped, everything fails.
        let sink = LineSink::new(Target::writer(full), mode, 1 << 16, DropReport::Json);
        for seq in 0..100 {
            sink.write_line(&make_line(0, seq, 20));
        }
        let report = sink.shutdown(Duration::from_secs(5));
        assert_eq!(
            report,
            OutputReport {
                written: 0,
                dropped: 0,
                lost: 100
            },
            "{mode:?}"
        );
    }
}

/// Panics on every write.
struct Panics;

impl Write for Panics {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        panic!("writer bug");
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panicking_target_loses_lines_and_the_worker_survives() {
    for mode in MODES {
        let sink = LineSink::new(Target::writer(Panics), mode, 64, DropReport::Json);
        let report = within(Duration::from_secs(10), move || {
            for seq in 0..50 {
                sink.write_line(&make_line(0, seq, 20));
            }
            sink.shutdown(Duration::from_secs(5))
        });
        assert_eq!(report.written, 0, "{mode:?}");
        assert_eq!(report.lost + report.dropped, 50, "{mode:?}");
    }
}

/// Writes into `memory`, and logs one line back into the same sink per
/// write, as a writer calling `tracing::warn!` would.
struct LogsBack {
    memory: Memory,
    sink: Arc<Mutex<Option<LineSink>>>,
    logged: Arc<AtomicU64>,
    saw_in_writer: Arc<AtomicBool>,
}

impl Write for LogsBack {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.saw_in_writer.store(in_writer(), Ordering::SeqCst);
        let sink = self.sink.lock().unwrap().clone();
        if let Some(sink) = sink {
            self.logged.fetch_add(1, Ordering::SeqCst);
            sink.write_line(b"the writer says: slow disk\n");
        }
        self.memory.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_writer_that_logs_has_its_lines_dropped_without_deadlock() {
    for mode in MODES {
        let memory = Memory::default();
        let slot = Arc::new(Mutex::new(None));
        let logged = Arc::new(AtomicU64::new(0));
        let saw_in_writer = Arc::new(AtomicBool::new(false));
        let target = LogsBack {
            memory: memory.clone(),
            sink: Arc::clone(&slot),
            logged: Arc::clone(&logged),
            saw_in_writer: Arc::clone(&saw_in_writer),
        };
        // A buffer smaller than two lines: a writer waiting for room would
        // wait for itself.
        let sink = LineSink::new(Target::writer(target), mode, 40, DropReport::Json);
        *slot.lock().unwrap() = Some(sink.clone());
        let app = sink.clone();
        let report = within(Duration::from_secs(10), move || {
            let handed = run_threads(&app, 2, 100, 40);
            assert!(app.flush(Duration::from_secs(5)));
            (handed, app.shutdown(Duration::from_secs(5)))
        });
        let (handed, report) = report;
        let logged = logged.load(Ordering::SeqCst);
        assert!(logged > 0);
        assert!(saw_in_writer.load(Ordering::SeqCst), "{mode:?}");
        // Every app line is written or (Drop) dropped for room; every line
        // the writer logged is dropped; none loops back into the output.
        assert_eq!(report.lost, 0, "{mode:?}");
        assert_eq!(report.written + report.dropped, handed + logged, "{mode:?}");
        assert!(!memory.text().contains("the writer says"), "{mode:?}");
        if mode != WriteMode::Drop {
            assert_eq!(report.written, handed, "{mode:?}");
            assert_eq!(report.dropped, logged, "{mode:?}");
        }
        // The target holds the sink: break the cycle so both are freed.
        slot.lock().unwrap().take();
    }
}

/// Checks lines against a periodic pattern without keeping them.
#[derive(Clone)]
struct Verifier {
    lines: Arc<Mutex<Vec<usize>>>,
    current: Arc<AtomicUsize>,
    bad: Arc<AtomicBool>,
    pattern: Arc<Vec<u8>>,
}

const PERIOD: usize = 23;

impl Write for Verifier {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut at = self.current.load(Ordering::SeqCst);
        let mut rest = buf;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let segment = &rest[..end.unwrap_or(rest.len())];
            let offset = at % PERIOD;
            if self.pattern.get(offset..offset + segment.len()) != Some(segment) {
                self.bad.store(true, Ordering::SeqCst);
            }
            at += segment.len();
            match end {
                Some(end) => {
                    self.lines.lock().unwrap().push(at);
                    at = 0;
                    rest = &rest[end + 1..];
                }
                None => rest = &[],
            }
        }
        self.current.store(at, Ordering::SeqCst);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_50_mb_line_is_written_whole_and_its_memory_released() {
    const HUGE: usize = 50 * 1024 * 1024;
    let period: Vec<u8> = (b'a'..).take(PERIOD).collect();
    let pattern = Arc::new(period.repeat(HUGE / PERIOD + 2));
    let mut huge = pattern[..HUGE].to_vec();
    huge.push(b'\n');
    let mut small = pattern[..100].to_vec();
    small.push(b'\n');
    for mode in MODES {
        let verifier = Verifier {
            lines: Arc::default(),
            current: Arc::default(),
            bad: Arc::default(),
            pattern: Arc::clone(&pattern),
        };
        let sink = LineSink::new(
            Target::writer(verifier.clone()),
            mode,
            DEFAULT_CAPACITY_BYTES,
            DropReport::Json,
        );
        for line in [&small, &huge, &small] {
            sink.write_line(line);
            assert!(sink.flush(Duration::from_secs(30)));
        }
        assert_eq!(
            *verifier.lines.lock().unwrap(),
            [100, HUGE, 100],
            "{mode:?}"
        );
        assert!(!verifier.bad.load(Ordering::SeqCst), "{mode:?}");
        // The huge line's buffer is gone: what is left is this thread's
        // lane and the worker's one spare, each of the default size (about
        // 540 KiB with the lines' marks).
        let held = sink.buffer_capacity();
        if mode == WriteMode::Direct {
            assert_eq!(held, 0);
        } else {
            let (bytes, marks) = lane_buffers(DEFAULT_CAPACITY_BYTES);
            let lane = bytes.capacity() + marks.capacity() * MARK_BYTES;
            assert!(lane <= 1024 * 1024 * 6 / 10, "{lane}");
            assert_eq!(held, 2 * lane, "{mode:?}");
        }
        assert_eq!(sink.shutdown(Duration::from_secs(5)).written, 3);
    }
}

#[test]
fn a_line_larger_than_the_buffer_waits_for_an_empty_buffer_in_block_mode() {
    let memory = Memory::slow(Duration::from_millis(1));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 64, DropReport::Json);
    let handed = thread::scope(|scope| {
        for t in 0..4 {
            let sink = sink.clone();
            scope.spawn(move || {
                for seq in 0..100 {
                    let len = if seq % 10 == 0 { 500 } else { 5 };
                    sink.write_line(&make_line(t, seq, len));
                }
            });
        }
        400
    });
    let report = sink.shutdown(Duration::from_secs(30));
    assert_eq!(report.written, handed);
    let seen = check_lines(&memory.text());
    assert!(seen.values().all(|order| order.len() == 100));
}

#[test]
fn flush_all_writes_everything_accepted_before_it() {
    let memory = Memory::slow(Duration::from_millis(1));
    let other = Memory::slow(Duration::from_millis(1));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 256, DropReport::Json);
    let sink2 = LineSink::new(other.target(), WriteMode::Drop, 1 << 20, DropReport::Json);
    for seq in 0..200 {
        sink.write_line(&make_line(0, seq, 30));
        sink2.write_line(&make_line(1, seq, 30));
    }
    flush_all(Duration::from_secs(10));
    assert_eq!(memory.line_count(), 200);
    assert_eq!(other.line_count(), 200);
    assert_eq!(sink.report().written, 200);
}

#[test]
fn flush_all_on_the_writer_thread_returns_at_once() {
    let memory = Memory::slow(Duration::from_millis(50));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 256, DropReport::Json);
    let _scope = WriterScope::enter();
    sink.write_line(b"dropped: this thread is a writer\n");
    let start = Instant::now();
    flush_all(Duration::from_secs(5));
    assert!(start.elapsed() < Duration::from_millis(20));
    assert_eq!(sink.report().dropped, 1);
    // A caller that skips formatting counts the line the same way.
    sink.drop_writer_line();
    assert_eq!(sink.report().dropped, 2);
}

#[test]
fn in_writer_is_set_only_inside_writes() {
    assert!(!in_writer());
    {
        let _outer = WriterScope::enter();
        {
            let _inner = WriterScope::enter();
            assert!(in_writer());
        }
        assert!(in_writer(), "nesting restores the outer state");
    }
    assert!(!in_writer());
}

#[test]
fn a_line_logged_alone_is_written_promptly() {
    let memory = Memory::default();
    let sink = LineSink::new(memory.target(), WriteMode::Block, 4096, DropReport::Json);
    let mut latencies = Vec::new();
    for seq in 0..30 {
        thread::sleep(Duration::from_millis(2)); // the worker goes idle
        let start = Instant::now();
        sink.write_line(&make_line(0, seq, 40));
        while memory.line_count() <= seq {
            std::hint::spin_loop();
            assert!(start.elapsed() < Duration::from_secs(5));
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(5), "{latencies:?}");
}

#[test]
fn a_busy_worker_is_not_woken_for_every_line() {
    let memory = Memory::slow(Duration::from_millis(1));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 1 << 16, DropReport::Json);
    thread::scope(|scope| {
        for t in 0..2 {
            let sink = sink.clone();
            scope.spawn(move || {
                for seq in 0..2000 {
                    sink.write_line(&make_line(t, seq, 60));
                }
            });
        }
    });
    let handed = 4000;
    assert!(sink.flush(Duration::from_secs(30)));
    let wakeups = sink.wakeups();
    let writes = memory.writes.load(Ordering::SeqCst) as u64;
    // At most one wake per batch, and far fewer batches than lines.
    assert!(wakeups <= writes, "{wakeups} wakeups, {writes} writes");
    assert!(writes < handed / 10, "{writes} writes for {handed} lines");
}

#[test]
fn a_worker_faster_than_its_producer_gathers_batches() {
    // A target as fast as /dev/null: the worker must not take the queue a
    // few lines at a time (each take contends with the producer for the
    // lock, and the worker then needs a core of its own).
    let memory = Memory::default();
    let sink = LineSink::new(memory.target(), WriteMode::Block, 1 << 16, DropReport::Json);
    let handed = 20_000;
    let line = make_line(0, 0, 60);
    for _ in 0..handed {
        sink.write_line(&line);
    }
    assert!(sink.flush(Duration::from_secs(30)));
    assert_eq!(memory.line_count(), handed);
    let writes = memory.writes.load(Ordering::SeqCst);
    // 1.2 MB through a 64 KiB buffer: about 40 batches of half the buffer
    // when gathered (at most one more per millisecond the producer takes);
    // a worker that takes whatever is there makes thousands.
    assert!(writes < handed / 20, "{writes} writes for {handed} lines");
}

#[test]
fn without_a_worker_thread_it_writes_directly() {
    for mode in [WriteMode::Block, WriteMode::Drop] {
        let memory = Memory::default();
        FAIL_SPAWN.with(|fail| fail.set(true));
        let sink = LineSink::new(memory.target(), mode, 64, DropReport::Json);
        sink.write_line(&make_line(0, 0, 100)); // larger than the buffer
                                                // Written before write_line returned, on this thread.
        assert_eq!(memory.line_count(), 1);
        assert_eq!(sink.buffer_capacity(), 0);
        assert_eq!(sink.shutdown(Duration::ZERO).written, 1);
    }
}

#[test]
fn after_shutdown_lines_are_written_directly() {
    for mode in MODES {
        let memory = Memory::default();
        let sink = LineSink::new(memory.target(), mode, 1024, DropReport::Json);
        sink.write_line(&make_line(0, 0, 5));
        assert_eq!(sink.shutdown(Duration::from_secs(5)).written, 1);
        sink.write_line(&make_line(0, 1, 5));
        assert_eq!(memory.line_count(), 2, "{mode:?}");
        let again = sink.shutdown(Duration::from_secs(5));
        assert_eq!(
            again,
            OutputReport {
                written: 2,
                dropped: 0,
                lost: 0
            },
            "{mode:?}"
        );
    }
}

#[test]
fn dropping_the_last_handle_lets_the_worker_finish_and_stop() {
    let memory = Memory::slow(Duration::from_millis(1));
    let sink = LineSink::new(memory.target(), WriteMode::Block, 128, DropReport::Json);
    let alive = sink.liveness();
    for seq in 0..50 {
        sink.write_line(&make_line(0, seq, 20));
    }
    drop(sink);
    // The worker writes what was queued, then exits and frees the sink.
    wait_for(|| !alive());
    assert_eq!(memory.line_count(), 50);
}

#[test]
fn a_rolling_file_appender_receives_whole_batches() {
    let dir = std::env::temp_dir().join(format!("sink-rolling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix("app.log")
        .build(&dir)
        .unwrap();
    let sink = LineSink::new(
        Target::make_writer(appender),
        WriteMode::Block,
        512,
        DropReport::Json,
    );
    let handed = run_threads(&sink, 3, 400, 512);
    let report = sink.shutdown(Duration::from_secs(10));
    assert_eq!(report.written, handed);
    let text = std::fs::read_to_string(dir.join("app.log")).unwrap();
    let seen = check_lines(&text);
    assert!(seen
        .values()
        .all(|order| *order == (0..400).collect::<Vec<_>>()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Takes at most 7 bytes a call, across as many parts as that spans.
struct Trickle(Vec<u8>);

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut left = 7;
        for part in parts {
            let n = part.len().min(left);
            self.0.extend_from_slice(&part[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        Ok(7 - left)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output for Trickle {
    fn write_batch(&mut self, batch: &[u8], progress: &mut dyn FnMut(usize) -> bool) -> Outcome {
        self.write_parts(&mut [io::IoSlice::new(batch)], progress)
    }
    fn vectored(&self) -> bool {
        true
    }
    fn write_parts(
        &mut self,
        parts: &mut [io::IoSlice<'_>],
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Outcome {
        write_parts_with_progress(self, parts, progress)
    }
}

#[test]
fn runs_of_several_lanes_are_written_whole_through_partial_vectored_writes() {
    // Two lanes' lines, interleaved in 2,600 runs (three `writev` windows).
    let chunk = |lane: usize| {
        let mut bytes = Vec::new();
        for seq in 0..1_300 {
            bytes.extend_from_slice(&make_line(lane, seq, 3 + seq % 5));
        }
        Chunk {
            bytes,
            marks: Vec::new(),
        }
    };
    let chunks = [chunk(0), chunk(1)];
    let ends = |chunk: &Chunk| {
        let mut start = 0;
        let mut runs = Vec::new();
        for (at, byte) in chunk.bytes.iter().enumerate() {
            if *byte == b'\n' {
                runs.push((start, at + 1));
                start = at + 1;
            }
        }
        runs
    };
    let (a, b) = (ends(&chunks[0]), ends(&chunks[1]));
    let runs: Vec<_> = a
        .iter()
        .zip(&b)
        .flat_map(|(&(s0, e0), &(s1, e1))| [(0, s0, e0), (1, s1, e1)])
        .collect();
    let expected: Vec<u8> = runs
        .iter()
        .flat_map(|&(chunk, start, end)| chunks[chunk].bytes[start..end].to_vec())
        .collect();
    let batch = Batch::Runs {
        chunks: &chunks,
        runs: &runs,
    };
    let mut out = Trickle(Vec::new());
    let mut reported = Vec::new();
    let outcome = batch.write(&mut out, &mut |done| {
        reported.push(done);
        true
    });
    assert!(matches!(outcome, Outcome::Written));
    assert_eq!(out.0, expected);
    // Progress in bytes of the whole batch (not of one `writev`'s window),
    // 7 at a time within a window; the lines counted in a prefix are the
    // complete lines in it.
    assert!(reported.len() > expected.len() / 8);
    assert!(reported
        .windows(2)
        .all(|w| w[1] > w[0] && w[1] - w[0] <= 14 && w[1] < expected.len()));
    for done in [0, 1, 7, 700, expected.len() - 1, expected.len()] {
        assert_eq!(
            batch.lines_in(done),
            count_lines(&expected[..done]),
            "{done}"
        );
    }
    assert_eq!(batch.lines_in(expected.len()), 2_600);
}
