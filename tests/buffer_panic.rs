//! A panic inside a request is a trigger: the panic hook's ERROR line is
//! preceded by the request's buffered lines (global subscriber and hook,
//! so this test has its own binary).

mod support;

use serde_json::Value;
use support::Captured;
use tracing::Level;
use tracing_correlation::{BufferConfig, TraceIds};

#[test]
fn a_panic_writes_the_requests_buffered_lines_before_the_panic_line() {
    let out = Captured::default();
    let guard = tracing_correlation::builder()
        .writer(out.clone())
        .filter("info")
        .span_filter("info")
        .log_bridge(false)
        .propagators(false)
        .continue_trace_from_env(false)
        .buffer_until_error(BufferConfig::new(Level::DEBUG))
        .try_init()
        .expect("first global init");
    let span = tracing::info_span!("request");
    let ids = span.in_scope(|| {
        tracing::debug!(step = 1, "before the panic");
        tracing::debug!(step = 2, "right before the panic");
        let caught = std::panic::catch_unwind(|| panic!("boom"));
        assert!(caught.is_err());
        TraceIds::from_span(&span).unwrap()
    });
    // Another request that does not panic keeps its lines to itself.
    tracing::info_span!("other").in_scope(|| tracing::debug!("never written"));
    drop(span);
    let lines = out.lines();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "before the panic",
            "right before the panic",
            "panicked: boom"
        ]
    );
    for line in &lines {
        assert_eq!(line["trace_id"], ids.trace_id_hex().as_str());
        assert_eq!(line["span_id"], ids.span_id_hex().as_str());
    }
    assert_eq!(lines[0]["buffered"], true);
    assert_eq!(lines[1]["buffered"], true);
    assert_eq!(lines[2].get("buffered"), None::<&Value>);
    assert_eq!(lines[2]["level"], "ERROR");
    let stats = guard.buffer_stats(0).unwrap();
    assert_eq!((stats.flushed, stats.discarded), (2, 1));
}
