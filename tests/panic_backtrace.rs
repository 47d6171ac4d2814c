//! The panic line's backtrace, seen from a child process run with
//! `RUST_BACKTRACE=1`: it starts at the panicking frame, holds no frame of the
//! hook or of std's panic machinery, and is bounded. The child installs the
//! global subscriber and panic hook, so this is a binary of its own.

mod support;

use serde_json::Value;
use std::process::Command;
use support::parse_strict;

const CHILD: &str = "TRACING_CORRELATION_PANIC_BACKTRACE_CHILD";

#[inline(never)]
fn inner(value: Option<u8>) -> u8 {
    value.unwrap() // the panicking line
}

#[inline(never)]
fn outer() -> u8 {
    inner(None).wrapping_add(1)
}

#[inline(never)]
fn deep(n: usize) -> u8 {
    if n == 0 {
        outer()
    } else {
        deep(n - 1).wrapping_add(1)
    }
}

/// Runs only when re-invoked by the test below: logs two panics to stdout.
#[test]
fn child_panics() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let guard = tracing_correlation::builder()
        .writer(std::io::stdout)
        .filter("info")
        .propagators(false)
        .continue_trace_from_env(false)
        .log_bridge(false)
        .try_init()
        .expect("init in the child");
    assert!(std::panic::catch_unwind(outer).is_err());
    assert!(std::panic::catch_unwind(|| deep(60)).is_err());
    drop(guard);
}

fn frame_names(backtrace: &str) -> Vec<&str> {
    backtrace
        .lines()
        .filter(|line| !line.trim_start().starts_with("at "))
        .map(|line| line.split_once(": ").map_or(line, |(_, name)| name))
        .collect()
}

#[test]
fn panic_line_backtrace_starts_at_the_panicking_frame_and_is_bounded() {
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child_panics", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("spawn test binary");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let panics: Vec<Value> = stdout
        .lines()
        // libtest prints "test child_panics ... " before the child's first line.
        .filter_map(|line| line.find('{').map(|at| parse_strict(&line[at..])))
        .filter(|line| line["target"] == "panic")
        .collect();
    assert_eq!(panics.len(), 2, "{stdout}");

    let forbidden = |name: &str| {
        name.starts_with("std::panicking::")
            || name.starts_with("core::panicking::")
            || name.contains("rust_begin_unwind")
            || name.starts_with("__rust_")
            || name.contains("::__rust_")
            || name.contains("panic_hook")
            || name.starts_with("std::backtrace")
    };

    // A short stack: inner ← outer ← catch_unwind ← the test function.
    let short = panics[0]["panic.backtrace"].as_str().expect("backtrace");
    let names = frame_names(short);
    assert_eq!(
        names[..2],
        ["panic_backtrace::inner", "panic_backtrace::outer"],
        "{short}"
    );
    let location = panics[0]["panic.location"].as_str().expect("location");
    assert!(
        location.starts_with("tests/panic_backtrace.rs:16:"),
        "{location}"
    );
    let first_at = short.lines().nth(1).expect("frame 0 location").trim();
    assert!(
        first_at.starts_with("at ") && first_at.contains("tests/panic_backtrace.rs:16:"),
        "frame 0 is the panicking line: {short}"
    );
    assert!(!names.iter().any(|name| forbidden(name)), "{short}");
    assert!(
        names.contains(&"panic_backtrace::child_panics"),
        "down to the test function: {short}"
    );
    assert!(
        names.len() < 16,
        "stops where the harness called the test: {short}"
    );

    // A deep stack: 32 frames, the rest counted.
    let long = panics[1]["panic.backtrace"].as_str().expect("backtrace");
    let names = frame_names(long);
    assert_eq!(names.len(), 33, "{long}");
    assert_eq!(
        names[..2],
        ["panic_backtrace::inner", "panic_backtrace::outer"]
    );
    assert!(
        names[2..32]
            .iter()
            .all(|name| *name == "panic_backtrace::deep"),
        "{long}"
    );
    let more = names[32].trim();
    assert!(
        more.starts_with('[') && more.ends_with(" more frames]"),
        "{long}"
    );
    let omitted: usize = more[1..more.len() - " more frames]".len()]
        .parse()
        .expect("count");
    // 61 `deep` frames in all, then the closure, catch_unwind, the test.
    assert!(omitted > 31, "{long}");
    assert!(!names.iter().any(|name| forbidden(name)), "{long}");
}
