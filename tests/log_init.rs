//! `init_json_logging`'s builder installs the log bridge by default and
//! `log::max_level` follows the filter. Installs globals: its own binary.

mod support;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{ids_of, Captured};
use tracing_correlation::{builder, InitError, OutputFormat, TraceIds};

static FORMATTED: AtomicUsize = AtomicUsize::new(0);

/// Counts how often it is formatted.
struct Counted;

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::SeqCst);
        f.write_str("counted")
    }
}

#[test]
fn init_forwards_log_records_and_log_max_level_follows_the_filter() {
    let out = Captured::default();
    let guard = builder()
        .writer(out.clone())
        .format(OutputFormat::Json)
        .filter("info,noisy=warn")
        .panic_hook(false)
        .try_init()
        .expect("first init");

    assert_eq!(log::max_level(), log::LevelFilter::Info);
    log::debug!("{Counted:?}");
    log::debug!(v:? = Counted; "kv");
    log::info!(target: "noisy", "{Counted:?}");
    assert_eq!(
        FORMATTED.load(Ordering::SeqCst),
        0,
        "disabled records are not formatted"
    );

    let span = tracing::info_span!("request");
    let ids = span.in_scope(|| {
        log::info!(user_id = 7; "forwarded {Counted:?}");
        TraceIds::from_span(&span).expect("ids")
    });
    log::warn!(target: "noisy", "kept");
    assert_eq!(FORMATTED.load(Ordering::SeqCst), 1);

    let second = builder().writer(out.clone()).try_init();
    assert!(
        matches!(second, Err(InitError::AlreadyInitialized)),
        "{second:?}"
    );
    log::warn!("still forwarded after a failed second init");

    let lines = out.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["message"], "forwarded counted");
    assert_eq!(lines[0]["user_id"], 7);
    assert_eq!(lines[0]["trace_id"], ids.trace_id_hex().as_str());
    assert_eq!(lines[0]["span_id"], ids.span_id_hex().as_str());
    assert_eq!(lines[1]["target"], "noisy");
    assert_eq!(ids_of(&lines[1]), None);
    assert_eq!(
        lines[2]["message"],
        "still forwarded after a failed second init"
    );
    drop(guard);
}
