//! The output path under the faults an operator meets: a slow or stalled
//! reader, `/dev/full`, a closed stdout, a writer that logs, a panic in a
//! `panic = "abort"` binary, a huge line. Each case runs the real one-call
//! setup in a child process (this binary, re-run with the case's name in
//! `TC_OUTPUT_FAULT_CASE`). No libtest harness (`harness = false`): the
//! child's stdout is the thing under test, so nothing else may write to it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CASE: &str = "TC_OUTPUT_FAULT_CASE";

/// Runs `case` in a child (this binary, only that test), with `configure`
/// setting its stdio and environment.
fn child(case: &str, configure: impl FnOnce(&mut Command)) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .env(CASE, case)
        .env_remove("RUST_LOG")
        .env_remove("RUST_LOG_SPANS")
        .env_remove("LOG_FORMAT")
        .env_remove("TRACEPARENT")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    configure(&mut command);
    let child = command.spawn().expect("child starts");
    // A hung child must fail the test, not hang CI: reads of its pipes
    // would otherwise wait forever.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        let _ = Command::new("kill").args(["-9", &pid]).status();
    });
    child
}

/// In the child: whether this test is the case to play.
fn playing(case: &str) -> bool {
    std::env::var(CASE).is_ok_and(|c| c == case)
}

/// JSON lines of `text`.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the child hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

const THREADS: usize = 4;
const PER_THREAD: usize = 10_000;

/// Logs `PER_THREAD` numbered lines from each of `THREADS` threads.
fn log_from_threads() {
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            std::thread::spawn(move || {
                let _span = tracing::info_span!("worker", thread).entered();
                for i in 0..PER_THREAD {
                    tracing::info!(thread, i, "line");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
}

fn a_slow_reader_gets_every_line_in_order() {
    if playing("a_slow_reader_gets_every_line_in_order") {
        let guard = tracing_correlation::init_json_logging().expect("init");
        log_from_threads();
        drop(guard);
        return;
    }
    let mut child = child("a_slow_reader_gets_every_line_in_order", |c| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    });
    // About 4 MB/s: far slower than the threads log.
    let mut stdout = child.stdout.take().unwrap();
    let mut text = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stdout.read(&mut chunk).expect("read") {
            0 => break,
            n => text.extend_from_slice(&chunk[..n]),
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("tracing-correlation"), "{stderr}");
    let lines = json_lines(&String::from_utf8(text).expect("UTF-8"));
    assert_eq!(lines.len(), THREADS * PER_THREAD, "every line, none lost");
    let mut next = [0u64; THREADS];
    for line in &lines {
        let thread = line["thread"].as_u64().unwrap() as usize;
        assert_eq!(
            line["i"].as_u64().unwrap(),
            next[thread],
            "order kept per thread"
        );
        next[thread] += 1;
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
    }
}

fn a_stalled_reader_bounds_shutdown_and_every_line_is_counted() {
    if playing("a_stalled_reader_bounds_shutdown_and_every_line_is_counted") {
        let guard = tracing_correlation::builder()
            .write_mode(tracing_correlation::WriteMode::Drop)
            .shutdown_timeout(Duration::from_millis(500))
            .try_init()
            .expect("init");
        log_from_threads();
        let start = Instant::now();
        let report = guard.shutdown();
        let took = start.elapsed();
        let out = &report.outputs[0];
        eprintln!(
            "REPORT {} {} {} {}",
            out.written,
            out.dropped,
            out.lost,
            took.as_millis()
        );
        return;
    }
    let mut child = child(
        "a_stalled_reader_bounds_shutdown_and_every_line_is_counted",
        |c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        },
    );
    // Read nothing until the child has reported, then drain.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut report = String::new();
    let mut diagnostics = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.starts_with("REPORT ") {
            report = line;
            break;
        }
        diagnostics.push_str(&line);
    }
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let numbers: Vec<u64> = report
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let [written, dropped, lost, took_ms] = numbers[..] else {
        panic!("no report: {report:?}");
    };
    let emitted = (THREADS * PER_THREAD) as u64;
    assert_eq!(written + dropped + lost, emitted, "{report}");
    assert!(dropped > 0, "the stalled pipe filled the buffer: {report}");
    assert!(took_ms < 2_000, "shutdown took {took_ms} ms, bound 500 ms");
    // The one thing a stalled pipe can show at exit: the writer thread was
    // abandoned inside a `write` the kernel had half accepted, so the very
    // last line may be cut (documented). Every line before it is whole.
    let text = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let lines = json_lines(text);
    let app_lines = lines.iter().filter(|l| l["message"] == "line").count() as u64;
    // A batch the pipe took after the deadline was counted as lost.
    assert!(
        written <= app_lines && app_lines <= written + lost,
        "{app_lines} read, {report}"
    );
    // Every line on stdout is JSON (nothing about the crate itself); the
    // exact counts were reported on stderr (the stalled pipe takes no
    // report line).
    assert_eq!(lines.len(), text.lines().count(), "{text}");
    assert!(
        diagnostics.contains(&format!("lines written: {written}, dropped: {dropped} ("))
            && diagnostics.contains(&format!("lost: {lost} (")),
        "{diagnostics}"
    );
}

fn dev_full_and_closed_pipes_never_crash_the_application() {
    if playing("dev_full_and_closed_pipes_never_crash_the_application") {
        let guard = tracing_correlation::init_json_logging().expect("init");
        for i in 0..1000 {
            tracing::info!(i, "line");
        }
        drop(guard);
        // A plain `println!` would panic on a full or closed stdout.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), b"{\"survived\":true}\n");
        return;
    }
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    // stdout and stderr both /dev/full, with a bogus LOG_FORMAT to report.
    let mut c = child(
        "dev_full_and_closed_pipes_never_crash_the_application",
        |c| {
            c.stdout(full()).stderr(full()).env("LOG_FORMAT", "bogus");
        },
    );
    let status = wait_with_timeout(&mut c, Duration::from_secs(30));
    assert!(status.success(), "/dev/full: {status}");

    // stdout closed by the reader at once (EPIPE), stderr closed too.
    let mut c = child(
        "dev_full_and_closed_pipes_never_crash_the_application",
        |c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        },
    );
    drop(c.stdout.take());
    drop(c.stderr.take());
    let status = wait_with_timeout(&mut c, Duration::from_secs(30));
    assert!(status.success(), "closed pipes: {status}");

    // stderr /dev/full with diagnostics to write: lines still reach stdout.
    let mut c = child(
        "dev_full_and_closed_pipes_never_crash_the_application",
        |c| {
            c.stdout(Stdio::piped())
                .stderr(full())
                .env("LOG_FORMAT", "bogus")
                .env("RUST_LOG", "info,=bad=directive");
        },
    );
    let mut text = String::new();
    c.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    let status = wait_with_timeout(&mut c, Duration::from_secs(30));
    assert!(status.success(), "stderr /dev/full: {status}");
    let lines = json_lines(&text);
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "line").count(),
        1000
    );
    assert_eq!(lines.last().unwrap()["survived"], true);
}

/// A writer whose every write logs through `log` and through `tracing`.
struct LoggingWriter(std::io::Stdout);

impl std::io::Write for LoggingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        log::warn!("log: writing {} bytes", bytes.len());
        tracing::warn!(bytes = bytes.len(), "tracing: writing");
        self.0.write_all(bytes)?;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn a_writer_that_logs_neither_loops_nor_deadlocks() {
    use tracing_correlation::{Output, WriteMode};
    for mode in ["block", "drop", "direct"] {
        if playing("a_writer_that_logs_neither_loops_nor_deadlocks")
            && std::env::var("MODE").is_ok_and(|m| m == mode)
        {
            let write_mode = match mode {
                "block" => WriteMode::Block,
                "drop" => WriteMode::Drop,
                _ => WriteMode::Direct,
            };
            let guard = tracing_correlation::builder()
                .default_output(
                    Output::writer(LoggingWriter(std::io::stdout()))
                        .mode(write_mode)
                        .capacity(16 * 200),
                )
                .try_init()
                .expect("init");
            for i in 0..100 {
                tracing::info!(i, "app line");
            }
            let report = guard.shutdown();
            eprintln!(
                "REPORT {} {}",
                report.outputs[0].written, report.outputs[0].dropped
            );
            return;
        }
    }
    if std::env::var(CASE).is_ok() {
        return;
    }
    for mode in ["block", "drop", "direct"] {
        let mut c = child("a_writer_that_logs_neither_loops_nor_deadlocks", |c| {
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .env("MODE", mode);
        });
        let mut text = String::new();
        c.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        let status = wait_with_timeout(&mut c, Duration::from_secs(20));
        let mut stderr = String::new();
        c.stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "{mode}: {status} {stderr}");
        let lines = json_lines(&text);
        let app = lines.iter().filter(|l| l["message"] == "app line").count();
        let from_writer = lines
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains("writing")))
            .count();
        if mode != "drop" {
            assert_eq!(app, 100, "{mode}: every application line");
        }
        assert_eq!(from_writer, 0, "{mode}: the writer's own lines are dropped");
        let report = stderr
            .lines()
            .find(|l| l.starts_with("REPORT "))
            .unwrap_or_else(|| panic!("{mode}: {stderr}"));
        let numbers: Vec<u64> = report
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(numbers[0] as usize, app, "{mode}: {report}");
        assert!(
            numbers[1] > 0,
            "{mode}: the writer's lines are counted: {report}"
        );
    }
}

fn a_panic_in_an_abort_binary_keeps_its_line_and_the_lines_before() {
    if playing("a_panic_in_an_abort_binary_keeps_its_line_and_the_lines_before") {
        let _guard = tracing_correlation::init_json_logging().expect("init");
        // `panic = "abort"`: the hooks run, then the process aborts; no
        // unwinding, no destructor (the guard is never dropped).
        let hooks = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            hooks(info);
            std::process::abort();
        }));
        let _span = tracing::info_span!("job").entered();
        for i in 0..500 {
            tracing::info!(i, "before the panic");
        }
        panic!("template missing");
    }
    for run in 0..5 {
        let mut c = child(
            "a_panic_in_an_abort_binary_keeps_its_line_and_the_lines_before",
            |c| {
                c.stdout(Stdio::piped()).stderr(Stdio::null());
            },
        );
        let mut text = String::new();
        c.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        let status = wait_with_timeout(&mut c, Duration::from_secs(20));
        assert!(!status.success(), "aborted");
        let lines = json_lines(&text);
        assert_eq!(
            lines
                .iter()
                .filter(|l| l["message"] == "before the panic")
                .count(),
            500,
            "run {run}"
        );
        let panic_line = lines.last().expect("lines");
        assert_eq!(
            panic_line["message"], "panicked: template missing",
            "run {run}"
        );
        assert_eq!(panic_line["span_id"], lines[0]["span_id"]);
    }
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn a_huge_line_is_written_whole_and_its_memory_released() {
    const HUGE: usize = 50 << 20;
    if playing("a_huge_line_is_written_whole_and_its_memory_released") {
        let guard = tracing_correlation::init_json_logging().expect("init");
        tracing::info!("warm up");
        assert!(guard.flush());
        let before = rss_kib();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    {
                        let huge = "x".repeat(HUGE);
                        tracing::info!(huge = huge.as_str(), "huge");
                    }
                    tracing::info!("small");
                    barrier.wait(); // measured while every thread is alive
                    barrier.wait();
                })
            })
            .collect();
        barrier.wait();
        assert!(guard.flush());
        let after = rss_kib();
        barrier.wait();
        for worker in workers {
            worker.join().unwrap();
        }
        eprintln!("RSS {before} {after}");
        return;
    }
    let mut c = child(
        "a_huge_line_is_written_whole_and_its_memory_released",
        |c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
        },
    );
    let mut stdout = BufReader::new(c.stdout.take().unwrap());
    let mut huge_lines = 0;
    let mut line = Vec::new();
    while stdout.read_until(b'\n', &mut line).unwrap() > 0 {
        if line.len() > HUGE {
            let value: Value = serde_json::from_slice(&line).expect("whole, valid JSON");
            assert_eq!(value["huge"].as_str().map(str::len), Some(HUGE));
            huge_lines += 1;
        }
        line.clear();
    }
    let status = wait_with_timeout(&mut c, Duration::from_secs(60));
    let mut stderr = String::new();
    c.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status} {stderr}");
    assert_eq!(huge_lines, THREADS);
    let rss: Vec<u64> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RSS "))
        .unwrap_or_else(|| panic!("{stderr}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let retained_kib = rss[1].saturating_sub(rss[0]);
    // ≤ 1 MiB per thread that logged a huge line (plus the threads' stacks).
    assert!(
        retained_kib <= (THREADS as u64) * 1024 + 512,
        "{retained_kib} KiB retained after {THREADS} lines of 50 MB"
    );
}

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    (
        "a_slow_reader_gets_every_line_in_order",
        a_slow_reader_gets_every_line_in_order,
    ),
    (
        "a_stalled_reader_bounds_shutdown_and_every_line_is_counted",
        a_stalled_reader_bounds_shutdown_and_every_line_is_counted,
    ),
    (
        "dev_full_and_closed_pipes_never_crash_the_application",
        dev_full_and_closed_pipes_never_crash_the_application,
    ),
    (
        "a_writer_that_logs_neither_loops_nor_deadlocks",
        a_writer_that_logs_neither_loops_nor_deadlocks,
    ),
    (
        "a_panic_in_an_abort_binary_keeps_its_line_and_the_lines_before",
        a_panic_in_an_abort_binary_keeps_its_line_and_the_lines_before,
    ),
    (
        "a_huge_line_is_written_whole_and_its_memory_released",
        a_huge_line_is_written_whole_and_its_memory_released,
    ),
];

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        let (_, run) = CASES
            .iter()
            .find(|(name, _)| *name == case)
            .expect("a known case");
        run();
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, run) in CASES {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if std::panic::catch_unwind(run).is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
