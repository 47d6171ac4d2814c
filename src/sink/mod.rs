//! PLACEHOLDER (replaced by the batched writer): writes each line directly.
#![allow(
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::missing_errors_doc,
    clippy::unused_self
)]

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    Block,
    Drop,
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OutputReport {
    pub written: u64,
    pub dropped: u64,
    pub lost: u64,
}

type WriteFn = Box<dyn Fn(&[u8]) -> io::Result<()> + Send + Sync>;

pub struct Target(WriteFn);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target")
    }
}

impl Target {
    pub fn stdout() -> Self {
        Self(Box::new(|b| io::stdout().lock().write_all(b)))
    }
    pub fn stderr() -> Self {
        Self(Box::new(|b| io::stderr().lock().write_all(b)))
    }
    pub fn writer<W: io::Write + Send + 'static>(w: W) -> Self {
        let w = Mutex::new(w);
        Self(Box::new(move |b| {
            w.lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .write_all(b)
        }))
    }
    pub fn make_writer<M>(m: M) -> Self
    where
        M: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        Self(Box::new(move |b| m.make_writer().write_all(b)))
    }
}

#[derive(Clone)]
pub(crate) struct LineSink(Arc<Inner>);

struct Inner {
    target: Target,
    written: AtomicU64,
    lost: AtomicU64,
}

impl std::fmt::Debug for LineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineSink")
    }
}

impl LineSink {
    pub(crate) fn new(target: Target, _mode: WriteMode, _capacity: usize) -> Self {
        Self(Arc::new(Inner {
            target,
            written: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }))
    }
    pub(crate) fn write_line(&self, line: &[u8]) {
        match (self.0.target.0)(line) {
            Ok(()) => self.0.written.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.lost.fetch_add(1, Ordering::Relaxed),
        };
    }
    pub(crate) fn flush(&self, _timeout: Duration) -> bool {
        true
    }
    pub(crate) fn shutdown(&self, _timeout: Duration) -> OutputReport {
        self.report()
    }
    pub(crate) fn report(&self) -> OutputReport {
        OutputReport {
            written: self.0.written.load(Ordering::Relaxed),
            dropped: 0,
            lost: self.0.lost.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn flush_all(_timeout: Duration) {}
pub(crate) fn in_writer() -> bool {
    false
}
