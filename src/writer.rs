//! A `MakeWriter` wrapper that stops a writer which logs through `tracing`
//! from recursing forever.

use std::cell::Cell;
use std::io;

use tracing_core::Metadata;
use tracing_subscriber::fmt::writer::EitherWriter;
use tracing_subscriber::fmt::MakeWriter;

thread_local! {
    /// How many lines this thread is writing right now, one inside another.
    static DEPTH: Cell<u8> = const { Cell::new(0) };
}

/// A line written while writing another line is written once; a line written
/// while writing *that* one is dropped, which ends the recursion of a writer
/// that logs each write.
const MAX_DEPTH: u8 = 2;

/// Wraps a `MakeWriter` so that recursion through the writer is bounded.
#[derive(Debug, Clone)]
pub(crate) struct ReentrancyLimited<W>(pub(crate) W);

/// The writer for one line; lowers the depth when dropped.
#[derive(Debug)]
pub(crate) struct DepthGuard<T> {
    inner: T,
}

impl<T: io::Write> io::Write for DepthGuard<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T> Drop for DepthGuard<T> {
    fn drop(&mut self) {
        let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<W> ReentrancyLimited<W> {
    fn enter() -> bool {
        DEPTH
            .try_with(|d| {
                let depth = d.get();
                if depth >= MAX_DEPTH {
                    false
                } else {
                    d.set(depth + 1);
                    true
                }
            })
            .unwrap_or(true)
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for ReentrancyLimited<W> {
    type Writer = EitherWriter<DepthGuard<W::Writer>, io::Sink>;

    fn make_writer(&'a self) -> Self::Writer {
        if Self::enter() {
            EitherWriter::A(DepthGuard {
                inner: self.0.make_writer(),
            })
        } else {
            EitherWriter::B(io::sink())
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if Self::enter() {
            EitherWriter::A(DepthGuard {
                inner: self.0.make_writer_for(meta),
            })
        } else {
            EitherWriter::B(io::sink())
        }
    }
}
