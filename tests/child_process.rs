//! A child process started with the injected environment continues the
//! parent's trace: this binary runs itself as the child, whose only job is
//! `init_json_logging()` and two log lines.

mod support;

use std::process::Command;

use support::{parse_strict, Harness, Mode};
use tracing_correlation::TraceIds;

/// Set only in the child's environment.
const CHILD: &str = "TRACING_CORRELATION_TEST_CHILD";

/// The child's side: a no-op unless this process was started by
/// [`a_child_process_logs_the_parents_trace_id`].
#[test]
fn child_entry() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let guard = tracing_correlation::init_json_logging().expect("the child's only init");
    // libtest wrote "test child_entry ... " without a newline.
    println!();
    tracing::info!("child started");
    tracing::info_span!("child_work").in_scope(|| tracing::info!("child working"));
    drop(guard);
}

#[test]
fn a_child_process_logs_the_parents_trace_id() {
    let h = Harness::new(Mode::Standalone);
    let (parent, mut command) = h.run(|| {
        let span = tracing::info_span!("spawn_child");
        let _entered = span.enter();
        let mut command = Command::new(std::env::current_exe().expect("test binary path"));
        command.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"]);
        tracing_correlation::inject_into_command(&mut command);
        (TraceIds::current().expect("inside a span"), command)
    });
    command
        .env(CHILD, "1")
        .env("RUST_LOG", "info")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env_remove("LOG_FORMAT")
        .env_remove("OTEL_PROPAGATORS");
    let output = command.output().expect("child runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let lines: Vec<_> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(parse_strict)
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let trace = parent.trace_id_hex();
    // Outside any span of its own, the child logs under the parent's span.
    let started = &lines[0];
    assert_eq!(started["message"], "child started");
    assert_eq!(started["trace_id"], trace.as_str(), "{stdout}");
    assert_eq!(started["span_id"], parent.span_id_hex().as_str());
    // Its spans are children of it: same trace, their own span id.
    let working = &lines[1];
    assert_eq!(working["message"], "child working");
    assert_eq!(working["trace_id"], trace.as_str());
    assert_ne!(working["span_id"], parent.span_id_hex().as_str());
    assert_eq!(working["span"]["name"], "child_work");
}
