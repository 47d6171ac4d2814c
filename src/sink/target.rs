//! Where a sink's lines go: stdout, stderr, any `io::Write`, any `MakeWriter`.

use std::fmt;
use std::io::{self, IoSlice, Write};

use tracing_subscriber::fmt::MakeWriter;

/// The destination of an output's lines.
///
/// A target is written by one thread at a time: the output's background
/// thread, or the logging thread itself in [`WriteMode::Direct`]. Each write
/// hands it many whole lines at once, and the target is flushed after each of
/// them.
///
/// For files rotated by time, give a `tracing_appender` rolling appender to
/// [`Target::make_writer`]: it checks for rotation each time the output asks
/// it for a writer, once per batch of lines.
///
/// ```no_run
/// use tracing_correlation::Target;
///
/// let to_stdout = Target::stdout();
/// let to_memory = Target::writer(Vec::<u8>::new());
/// let daily = Target::make_writer(tracing_appender::rolling::daily(
///     std::env::temp_dir(),
///     "app.log",
/// ));
/// # drop((to_stdout, to_memory, daily));
/// ```
///
/// [`WriteMode::Direct`]: crate::WriteMode::Direct
pub struct Target {
    pub(crate) output: Box<dyn Output>,
    kind: &'static str,
}

impl Target {
    /// The process' standard output.
    ///
    /// ```
    /// let target = tracing_correlation::Target::stdout();
    /// # drop(target);
    /// ```
    pub fn stdout() -> Target {
        Target {
            output: Box::new(StdStream::Stdout),
            kind: "stdout",
        }
    }

    /// The process' standard error.
    ///
    /// ```
    /// let target = tracing_correlation::Target::stderr();
    /// # drop(target);
    /// ```
    pub fn stderr() -> Target {
        Target {
            output: Box::new(StdStream::Stderr),
            kind: "stderr",
        }
    }

    /// Any writer: a `File`, a `BufWriter`, a socket, a `Vec<u8>`.
    ///
    /// ```no_run
    /// let file = std::fs::File::create(std::env::temp_dir().join("app.log"))?;
    /// let target = tracing_correlation::Target::writer(file);
    /// # drop(target);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn writer<W: Write + Send + 'static>(writer: W) -> Target {
        Target {
            output: Box::new(PlainWriter(writer)),
            kind: "writer",
        }
    }

    /// Any `MakeWriter`, asked for a writer once per batch of lines: a
    /// `tracing_appender::rolling::RollingFileAppender` rotates files this way.
    ///
    /// ```no_run
    /// let appender = tracing_appender::rolling::hourly(std::env::temp_dir(), "app.log");
    /// let target = tracing_correlation::Target::make_writer(appender);
    /// # drop(target);
    /// ```
    pub fn make_writer<M>(make_writer: M) -> Target
    where
        M: for<'a> MakeWriter<'a> + Send + 'static,
    {
        Target {
            output: Box::new(MadeWriter(make_writer)),
            kind: "make_writer",
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Target").field(&self.kind).finish()
    }
}

/// How far a batch got.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every byte was written and the target flushed.
    Written,
    /// The progress callback asked to stop (the output was abandoned).
    Stopped,
    /// The target failed after `written` bytes.
    Failed { written: usize, error: io::Error },
}

impl Outcome {
    /// The outcome of a write that started `base` bytes into a batch, as an
    /// outcome of the batch.
    pub(crate) fn after(self, base: usize) -> Outcome {
        match self {
            Outcome::Failed { written, error } => Outcome::Failed {
                written: base + written,
                error,
            },
            other => other,
        }
    }
}

/// A target seen by the sink: writes one batch, reporting progress.
pub(crate) trait Output: Send {
    /// Writes `batch` whole, then flushes. `progress` is told the bytes done
    /// after every partial write and may ask to stop by returning `false`.
    fn write_batch(&mut self, batch: &[u8], progress: &mut dyn FnMut(usize) -> bool) -> Outcome;

    /// `true` when [`Output::write_parts`] hands many parts to the system in
    /// one call (`writev`); otherwise the sink copies the parts into one
    /// batch first.
    fn vectored(&self) -> bool {
        false
    }

    /// Writes `parts` whole, in order, then flushes; progress as in
    /// [`Output::write_batch`], in bytes of all the parts.
    fn write_parts(
        &mut self,
        parts: &mut [IoSlice<'_>],
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Outcome {
        let mut base = 0;
        for part in parts.iter() {
            match self
                .write_batch(part, &mut |done| progress(base + done))
                .after(base)
            {
                Outcome::Written => base += part.len(),
                stopped_or_failed => return stopped_or_failed,
            }
        }
        Outcome::Written
    }
}

enum StdStream {
    Stdout,
    Stderr,
}

impl Output for StdStream {
    fn write_batch(&mut self, batch: &[u8], progress: &mut dyn FnMut(usize) -> bool) -> Outcome {
        // One lock for the whole batch. std's stdout is line-buffered; a batch
        // ends in `\n`, so it goes straight to the file descriptor.
        match self {
            StdStream::Stdout => write_with_progress(&mut io::stdout().lock(), batch, progress),
            StdStream::Stderr => write_with_progress(&mut io::stderr().lock(), batch, progress),
        }
    }

    fn vectored(&self) -> bool {
        true
    }

    fn write_parts(
        &mut self,
        parts: &mut [IoSlice<'_>],
        progress: &mut dyn FnMut(usize) -> bool,
    ) -> Outcome {
        // The parts end in `\n`: line buffering passes them straight to one
        // `writev` of the file descriptor.
        match self {
            StdStream::Stdout => {
                write_parts_with_progress(&mut io::stdout().lock(), parts, progress)
            }
            StdStream::Stderr => {
                write_parts_with_progress(&mut io::stderr().lock(), parts, progress)
            }
        }
    }
}

struct PlainWriter<W>(W);

impl<W: Write + Send> Output for PlainWriter<W> {
    fn write_batch(&mut self, batch: &[u8], progress: &mut dyn FnMut(usize) -> bool) -> Outcome {
        write_with_progress(&mut self.0, batch, progress)
    }
}

struct MadeWriter<M>(M);

impl<M> Output for MadeWriter<M>
where
    M: for<'a> MakeWriter<'a> + Send,
{
    fn write_batch(&mut self, batch: &[u8], progress: &mut dyn FnMut(usize) -> bool) -> Outcome {
        let mut writer = self.0.make_writer();
        write_with_progress(&mut writer, batch, progress)
    }
}

/// `write_all` + `flush` that says how far it got: the sink counts the lines
/// of a batch that made it out before a failure.
pub(crate) fn write_with_progress<W: Write + ?Sized>(
    writer: &mut W,
    batch: &[u8],
    progress: &mut dyn FnMut(usize) -> bool,
) -> Outcome {
    match write_counted(batch.len(), |done| writer.write(&batch[done..]), progress) {
        Outcome::Written => flush_all_of(writer),
        stopped_or_failed => stopped_or_failed,
    }
}

/// [`write_with_progress`] for parts written together (`write_vectored`).
pub(crate) fn write_parts_with_progress<W: Write + ?Sized>(
    writer: &mut W,
    mut parts: &mut [IoSlice<'_>],
    progress: &mut dyn FnMut(usize) -> bool,
) -> Outcome {
    let total = parts.iter().map(|part| part.len()).sum();
    let mut taken = 0;
    let outcome = write_counted(
        total,
        |done| {
            // Skip what the previous call took, then hand over the rest.
            IoSlice::advance_slices(&mut parts, done - taken);
            taken = done;
            writer.write_vectored(parts)
        },
        progress,
    );
    match outcome {
        Outcome::Written => flush_all_of(writer),
        stopped_or_failed => stopped_or_failed,
    }
}

/// Calls `write(done)` until `total` bytes are taken, telling `progress`
/// after each partial write; retries on `Interrupted`.
fn write_counted(
    total: usize,
    mut write: impl FnMut(usize) -> io::Result<usize>,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Outcome {
    let mut done = 0;
    while done < total {
        match write(done) {
            Ok(0) => {
                return Outcome::Failed {
                    written: done,
                    error: io::Error::from(io::ErrorKind::WriteZero),
                }
            }
            Ok(n) => {
                done += n.min(total - done);
                if done < total && !progress(done) {
                    return Outcome::Stopped;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                return Outcome::Failed {
                    written: done,
                    error,
                }
            }
        }
    }
    Outcome::Written
}

fn flush_all_of<W: Write + ?Sized>(writer: &mut W) -> Outcome {
    loop {
        match writer.flush() {
            Ok(()) => return Outcome::Written,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // Every byte was handed over; a buffered writer that cannot flush
            // has lost them, but we cannot tell which lines, so the whole
            // batch counts as failed.
            Err(error) => return Outcome::Failed { written: 0, error },
        }
    }
}
