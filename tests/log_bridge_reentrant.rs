//! Logging from inside the pipeline — a writer, a `Debug` impl, a key-value —
//! neither hangs nor loops, with a *global* subscriber (where `tracing` itself
//! does not stop re-entrant events). Installs globals: its own binary.

mod support;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use support::{parse_strict, within};
use tracing_subscriber::fmt::MakeWriter;

/// A writer that logs through `log` on every write, before taking its lock.
#[derive(Clone, Default)]
struct LoggingWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LoggingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        log::warn!(target: "writer", "from the writer");
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LoggingWriter {
    type Writer = LoggingWriter;
    fn make_writer(&'a self) -> LoggingWriter {
        self.clone()
    }
}

/// Logs when formatted.
struct Chatty;

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        log::error!(target: "chatty", "from a Debug impl");
        f.write_str("chatty")
    }
}

impl fmt::Display for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[test]
fn logging_from_inside_the_pipeline_is_written_at_most_once_and_never_hangs() {
    let writer = LoggingWriter::default();
    let _guard = tracing_correlation::builder()
        .writer(writer.clone())
        .filter("trace")
        .panic_hook(false)
        .try_init()
        .expect("first init");

    within(20, || {
        let _span = tracing::info_span!("outer").entered();
        log::info!("log outer");
        tracing::info!("tracing outer");
        log::info!("debug arg {Chatty:?}");
        log::info!(v:? = Chatty, w:% = Chatty; "kv values");
        tracing::info!(v = ?Chatty, "tracing field");
    });

    let text = String::from_utf8(writer.0.lock().expect("lock").clone()).expect("UTF-8");
    let lines: Vec<_> = text.lines().map(parse_strict).collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("?"))
        .collect();
    // A record from the writer is dropped (and counted by the output).
    // Records from a Debug impl inside a forwarded record are dropped;
    // inside a tracing event they are forwarded once.
    assert_eq!(
        messages,
        [
            "log outer",
            "tracing outer",
            "debug arg chatty",
            "kv values",
            "from a Debug impl",
            "tracing field",
        ],
        "{text}"
    );
    assert_eq!(lines[3]["v"], "chatty");
    assert_eq!(lines[3]["w"], "chatty");
}
