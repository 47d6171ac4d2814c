//! Outputs: where lines go (stdout, stderr, a rotating file, any writer),
//! in which format, through which filter, and how the writing is done.

pub(crate) mod buffer;
pub(crate) mod filter;
pub(crate) mod layer;
pub(crate) mod verbosity;

use std::fmt;
use std::io;

use tracing_subscriber::fmt::MakeWriter;

use crate::sink::{Target, WriteMode};
use crate::JsonFormat;
pub use buffer::{BufferConfig, BufferStats, DEFAULT_PER_TRACE_BYTES, DEFAULT_TOTAL_BYTES};
pub use layer::SpanLines;
pub use verbosity::{VerbosityConfig, VerbosityStats, DEFAULT_MAX_RAISED_PER_MINUTE};

/// The output format of an [`Output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per line ([`JsonFormat`]).
    Json,
    /// Human-readable lines with the ids ([`PrettyFormat`](crate::PrettyFormat)).
    Pretty,
}

/// The bytes of lines that may wait in an output when no capacity is
/// chosen: 512 KiB, shared among the threads that log (each may queue at
/// least 64 KiB). The output holds about twice that: the waiting lines and
/// the batch being written.
pub const DEFAULT_CAPACITY: usize = crate::sink::DEFAULT_CAPACITY_BYTES;

/// One destination for log lines, with its own format, filter and write
/// mode. The builder's first output is configured by
/// [`Builder::writer`](crate::Builder::writer), [`Builder::format`](crate::Builder::format),
/// [`Builder::json`](crate::Builder::json), [`Builder::filter`](crate::Builder::filter) and
/// [`Builder::write_mode`](crate::Builder::write_mode); more are added with
/// [`Builder::output`](crate::Builder::output).
///
/// Unset choices take the process-wide defaults: the format from
/// `LOG_FORMAT` (JSON when unset), the filter from `RUST_LOG` (`info` when
/// unset), [`WriteMode::Block`] for stdout, stderr, files and `io::Write`
/// targets, [`WriteMode::Direct`] for a [`MakeWriter`] (which decides itself
/// how it writes).
///
/// ```no_run
/// use tracing_correlation::{rolling, Output, OutputFormat, WriteMode};
///
/// let _guard = tracing_correlation::builder()
///     .filter("warn") // stdout: warnings and errors
///     .output(
///         Output::file(rolling::daily("/var/log/app", "app.log"))
///             .filter("debug")
///             .mode(WriteMode::Block),
///     )
///     .output(Output::stderr().format(OutputFormat::Pretty).filter("error"))
///     .init();
/// ```
#[must_use = "an Output does nothing until given to `Builder::output`"]
pub struct Output {
    pub(crate) target: Target,
    pub(crate) mode: Option<WriteMode>,
    default_mode: WriteMode,
    pub(crate) capacity: usize,
    pub(crate) format: Option<OutputFormat>,
    pub(crate) json: Option<JsonFormat>,
    pub(crate) filter: Option<String>,
    pub(crate) span_lines: Option<SpanLines>,
    pub(crate) buffer: Option<BufferConfig>,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("mode", &self.write_mode())
            .field("capacity", &self.capacity)
            .field("format", &self.format)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Output {
    fn with_target(target: Target, default_mode: WriteMode) -> Self {
        Self {
            target,
            mode: None,
            default_mode,
            capacity: DEFAULT_CAPACITY,
            format: None,
            json: None,
            filter: None,
            span_lines: None,
            buffer: None,
        }
    }

    /// Lines to standard output (the default output).
    ///
    /// ```
    /// let output = tracing_correlation::Output::stdout();
    /// # drop(output);
    /// ```
    pub fn stdout() -> Self {
        Self::with_target(Target::stdout(), WriteMode::Block)
    }

    /// Lines to standard error.
    ///
    /// ```
    /// let output = tracing_correlation::Output::stderr();
    /// # drop(output);
    /// ```
    pub fn stderr() -> Self {
        Self::with_target(Target::stderr(), WriteMode::Block)
    }

    /// Lines to a file rotated by [`tracing_appender`]'s rolling appender
    /// (re-exported as [`rolling`](crate::rolling)): hourly, daily, by
    /// size of history… Rotation happens between batches, never inside a line.
    ///
    /// ```no_run
    /// use tracing_correlation::{rolling, Output};
    ///
    /// let appender = rolling::Builder::new()
    ///     .rotation(rolling::Rotation::DAILY)
    ///     .filename_prefix("app")
    ///     .filename_suffix("log")
    ///     .max_log_files(7)
    ///     .build("/var/log/app")
    ///     .expect("the log directory is writable");
    /// let output = Output::file(appender);
    /// # drop(output);
    /// ```
    pub fn file(appender: tracing_appender::rolling::RollingFileAppender) -> Self {
        Self::writer(appender)
    }

    /// Lines to any `io::Write` (a file, a socket, a buffer), owned by the
    /// output.
    ///
    /// ```
    /// let output = tracing_correlation::Output::writer(std::io::sink());
    /// # drop(output);
    /// ```
    pub fn writer<W: io::Write + Send + 'static>(writer: W) -> Self {
        Self::with_target(Target::writer(writer), WriteMode::Block)
    }

    /// Lines to a `tracing_subscriber` [`MakeWriter`], asked for a writer
    /// per line ([`WriteMode::Direct`], the default here) or per batch.
    ///
    /// ```
    /// let output = tracing_correlation::Output::make_writer(std::io::stderr);
    /// # drop(output);
    /// ```
    pub fn make_writer<M>(make_writer: M) -> Self
    where
        M: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Self::with_target(Target::make_writer(make_writer), WriteMode::Direct)
    }

    /// How lines are written: see [`WriteMode`].
    ///
    /// ```
    /// use tracing_correlation::{Output, WriteMode};
    ///
    /// let output = Output::stdout().mode(WriteMode::Drop);
    /// # drop(output);
    /// ```
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The most bytes of lines waiting to be written (512 KiB by default;
    /// background modes only), shared among the threads that log: each may
    /// queue `bytes / threads`, and at least 64 KiB. A single line longer
    /// than its thread's share is still written whole, and the memory it
    /// needed is released after.
    ///
    /// ```
    /// let output = tracing_correlation::Output::stdout().capacity(4 << 20);
    /// # drop(output);
    /// ```
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes.max(1);
        self
    }

    /// JSON or pretty lines; unset, `LOG_FORMAT` decides.
    ///
    /// ```
    /// use tracing_correlation::{Output, OutputFormat};
    ///
    /// let output = Output::stderr().format(OutputFormat::Pretty);
    /// # drop(output);
    /// ```
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// The JSON options of this output, used when its format is JSON.
    ///
    /// ```
    /// use tracing_correlation::{JsonFormat, Output};
    ///
    /// let output = Output::stdout().json(JsonFormat::new().with_span_list(true));
    /// # drop(output);
    /// ```
    pub fn json(mut self, json: JsonFormat) -> Self {
        self.json = Some(json);
        self
    }

    /// Which lines this output writes (`RUST_LOG` syntax); unset, `RUST_LOG`
    /// decides (`info` when unset). Spans exist whatever this says (see
    /// [`Builder::span_filter`](crate::Builder::span_filter)), so a line
    /// written here carries its span's ids even when that span's level is
    /// below this filter.
    ///
    /// ```
    /// let output = tracing_correlation::Output::stderr().filter("warn,my_crate=info");
    /// # drop(output);
    /// ```
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// This output's choices with `other`'s target (and default mode).
    pub(crate) fn retarget(self, other: Output) -> Output {
        Output {
            mode: self.mode,
            capacity: self.capacity,
            format: self.format,
            json: self.json,
            filter: self.filter,
            span_lines: self.span_lines,
            buffer: self.buffer,
            ..other
        }
    }

    /// `other`, with this output's choices where `other` made none.
    pub(crate) fn replaced_by(self, other: Output) -> Output {
        Output {
            mode: other.mode.or(self.mode),
            capacity: if other.capacity == DEFAULT_CAPACITY {
                self.capacity
            } else {
                other.capacity
            },
            format: other.format.or(self.format),
            json: other.json.or(self.json),
            filter: other.filter.or(self.filter),
            span_lines: other.span_lines.or(self.span_lines),
            buffer: other.buffer.or(self.buffer),
            ..other
        }
    }

    /// Also writes a line when a span opens and/or closes (none by
    /// default), for the spans this output's filter enables; the close line
    /// carries `span.duration_us`. Each line has the span's level, the target
    /// `tracing_correlation::span`, and the span's own ids and fields.
    ///
    /// ```
    /// use tracing_correlation::{Output, SpanLines};
    ///
    /// let output = Output::stderr().span_lines(SpanLines::CLOSED);
    /// # drop(output);
    /// ```
    pub fn span_lines(mut self, span_lines: SpanLines) -> Self {
        self.span_lines = Some(span_lines);
        self
    }

    /// Keeps this output's lines of each request that its filter does not
    /// write (as `config` captures them) until the request fails: see
    /// [`BufferConfig`].
    ///
    /// ```
    /// use tracing::Level;
    /// use tracing_correlation::{BufferConfig, Output};
    ///
    /// let output = Output::stderr()
    ///     .filter("info")
    ///     .buffer_until_error(BufferConfig::new(Level::DEBUG));
    /// # drop(output);
    /// ```
    pub fn buffer_until_error(mut self, config: BufferConfig) -> Self {
        self.buffer = Some(config);
        self
    }

    pub(crate) fn write_mode(&self) -> WriteMode {
        self.mode.unwrap_or(self.default_mode)
    }
}
