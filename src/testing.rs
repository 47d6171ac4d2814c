//! Test helpers: capture what a closure or future logs, as parsed JSON
//! lines, with the spans it created, and assert ids and parents.
//!
//! The capture uses the same pipeline as [`init_json_logging`](crate::init_json_logging)
//! (built with [`Builder::build`](crate::Builder::build) and installed only on
//! the current thread, or around the future), so a test sees exactly the
//! lines a service would write — with every level and every span enabled
//! unless the builder passed to [`capture_with`] says otherwise.
//!
//! ```
//! use tracing_correlation::testing;
//!
//! let ((), captured) = testing::capture(|| {
//!     let _request = tracing::info_span!("request").entered();
//!     let _db = tracing::info_span!("db").entered();
//!     tracing::warn!(rows = 0, "empty result");
//! });
//! let line = captured.line("empty result");
//! assert_eq!(line["rows"], 0);
//! captured.assert_line_in_span("empty result", "db");
//! captured.assert_child_of("db", "request");
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tracing::instrument::WithSubscriber;
use tracing_core::span::Id;
use tracing_core::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::layer::with_span_data;
use crate::{Builder, LoggingGuard, OutputFormat, WriteMode};

/// A span created during a capture, with its W3C ids as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapturedSpan {
    /// The span's name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id (a local span or a remote caller), `None` for
    /// a root.
    pub parent_span_id: Option<String>,
}

/// What a capture saw: every line, parsed, in order, and every span that
/// got ids.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    lines: Vec<Value>,
    spans: Vec<CapturedSpan>,
}

/// Runs `f` with every level and span enabled and returns what it logged.
///
/// # Panics
///
/// If a line is not valid JSON (which would be a bug of this crate).
///
/// ```
/// let (answer, captured) = tracing_correlation::testing::capture(|| {
///     tracing::info!(answer = 42, "computed");
///     42
/// });
/// assert_eq!(answer, 42);
/// assert_eq!(captured.lines().len(), 1);
/// assert!(captured.lines()[0].get("trace_id").is_none(), "no span: no ids");
/// ```
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Captured) {
    capture_with(crate::builder(), f)
}

/// [`capture`] with the choices of `builder` (filters, JSON options, a
/// tracer provider…); its first output is replaced by the capture's JSON
/// buffer, and the unset filters default to `trace`.
///
/// # Panics
///
/// If the builder's filters do not parse, or a line is not valid JSON.
///
/// ```
/// let ((), captured) = tracing_correlation::testing::capture_with(
///     tracing_correlation::builder().filter("warn"),
///     || {
///         let _span = tracing::info_span!("job").entered();
///         tracing::info!("not written");
///         tracing::warn!("written");
///     },
/// );
/// assert_eq!(captured.lines().len(), 1);
/// captured.assert_line_in_span("written", "job");
/// ```
pub fn capture_with<R>(builder: Builder, f: impl FnOnce() -> R) -> (R, Captured) {
    let session = Session::start(builder);
    let result = tracing::dispatcher::with_default(&session.dispatch, f);
    (result, session.finish())
}

/// Runs `future` to completion with every level and span enabled and
/// returns what it logged, from whichever thread polls it. Tasks it spawns
/// run outside the capture unless they are given its dispatcher (the
/// crate's context helpers do that).
///
/// # Panics
///
/// If a line is not valid JSON.
///
/// ```
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # runtime.block_on(async {
/// use tracing::Instrument;
///
/// let ((), captured) = tracing_correlation::testing::capture_future(
///     async { tracing::info!("inside") }.instrument(tracing::info_span!("task")),
/// )
/// .await;
/// captured.assert_line_in_span("inside", "task");
/// # });
/// ```
pub async fn capture_future<F: Future>(future: F) -> (F::Output, Captured) {
    capture_future_with(crate::builder(), future).await
}

/// [`capture_future`] with the choices of `builder` (see [`capture_with`]).
///
/// # Panics
///
/// If the builder's filters do not parse, or a line is not valid JSON.
///
/// ```
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # runtime.block_on(async {
/// let (value, captured) = tracing_correlation::testing::capture_future_with(
///     tracing_correlation::builder().filter("error"),
///     async {
///         tracing::warn!("left out");
///         7
///     },
/// )
/// .await;
/// assert_eq!(value, 7);
/// assert!(captured.lines().is_empty());
/// # });
/// ```
pub async fn capture_future_with<F: Future>(builder: Builder, future: F) -> (F::Output, Captured) {
    let session = Session::start(builder);
    let output = future.with_subscriber(session.dispatch.clone()).await;
    (output, session.finish())
}

impl Captured {
    /// Every line, in the order written.
    #[must_use]
    pub fn lines(&self) -> &[Value] {
        &self.lines
    }

    /// Every span that got ids, in the order they were first entered or
    /// closed.
    #[must_use]
    pub fn spans(&self) -> &[CapturedSpan] {
        &self.spans
    }

    /// The one line whose `message` is `message`.
    ///
    /// # Panics
    ///
    /// Unless exactly one line has that message; the panic lists the
    /// messages seen.
    #[must_use]
    pub fn line(&self, message: &str) -> &Value {
        let found: Vec<&Value> = self
            .lines
            .iter()
            .filter(|line| line["message"] == message)
            .collect();
        match found.as_slice() {
            [line] => line,
            _ => panic!(
                "expected exactly one line with message {message:?}, found {}; messages: {:?}",
                found.len(),
                self.messages()
            ),
        }
    }

    /// The one span named `name`.
    ///
    /// # Panics
    ///
    /// Unless exactly one span has that name.
    #[must_use]
    pub fn span(&self, name: &str) -> &CapturedSpan {
        let found: Vec<&CapturedSpan> = self.spans.iter().filter(|s| s.name == name).collect();
        match found.as_slice() {
            [span] => span,
            _ => panic!(
                "expected exactly one span named {name:?}, found {}; spans: {:?}",
                found.len(),
                self.spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            ),
        }
    }

    /// Asserts that the line with `message` carries the ids of the span
    /// named `span` (same `trace_id` and `span_id`).
    ///
    /// # Panics
    ///
    /// If it does not, or the line or span is not found exactly once.
    pub fn assert_line_in_span(&self, message: &str, span: &str) {
        let line = self.line(message);
        let span = self.span(span);
        assert_eq!(
            (line["trace_id"].as_str(), line["span_id"].as_str()),
            (Some(span.trace_id.as_str()), Some(span.span_id.as_str())),
            "line {message:?} is not in span {:?}: {line}",
            span.name
        );
    }

    /// Asserts that span `child`'s parent is span `parent`: the same trace,
    /// and `parent`'s span id as its parent span id.
    ///
    /// # Panics
    ///
    /// If it is not, or either span is not found exactly once.
    pub fn assert_child_of(&self, child: &str, parent: &str) {
        let child = self.span(child);
        let parent = self.span(parent);
        assert_eq!(
            (&child.trace_id, child.parent_span_id.as_ref()),
            (&parent.trace_id, Some(&parent.span_id)),
            "span {:?} is not a child of {:?}",
            child.name,
            parent.name
        );
    }

    fn messages(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|line| line["message"].as_str())
            .collect()
    }
}

/// One capture: the dispatcher, its buffer and its span log.
struct Session {
    dispatch: tracing::Dispatch,
    guard: LoggingGuard,
    buffer: Buffer,
    spans: Arc<Mutex<SpanLog>>,
}

impl Session {
    fn start(builder: Builder) -> Self {
        let buffer = Buffer::default();
        let spans = Arc::new(Mutex::new(SpanLog::default()));
        let (dispatch, guard) = builder
            .capture_defaults(Box::new(SpanRecorder(spans.clone())))
            .writer(buffer.clone())
            .write_mode(WriteMode::Direct)
            .format(OutputFormat::Json)
            .build()
            .unwrap_or_else(|error| panic!("testing::capture: {error}"));
        Self {
            dispatch,
            guard,
            buffer,
            spans,
        }
    }

    fn finish(self) -> Captured {
        drop(self.dispatch);
        let _ = self.guard.shutdown();
        let text = {
            let bytes = self.buffer.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let lines = text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"))
            })
            .collect();
        let spans = std::mem::take(
            &mut self
                .spans
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .order,
        );
        Captured { lines, spans }
    }
}

/// The capture's in-memory output.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> BufferWriter {
        BufferWriter(self.0.clone())
    }
}

#[derive(Default)]
struct SpanLog {
    seen: HashMap<Id, usize>,
    order: Vec<CapturedSpan>,
}

/// Records each span's ids when it is first entered or closed (in
/// OpenTelemetry mode ids exist from the first enter).
struct SpanRecorder(Arc<Mutex<SpanLog>>);

impl SpanRecorder {
    fn record<S: Subscriber + for<'a> LookupSpan<'a>>(&self, id: &Id, ctx: &Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let Some((ids, parent)) =
            with_span_data(&span, |data| Some((data.ids()?, data.parent_span_id()))).flatten()
        else {
            return;
        };
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if log.seen.contains_key(id) {
            return;
        }
        let index = log.order.len();
        log.seen.insert(id.clone(), index);
        log.order.push(CapturedSpan {
            name: span.name().to_owned(),
            trace_id: ids.trace_id_hex().to_string(),
            span_id: ids.span_id_hex().to_string(),
            parent_span_id: parent.map(|p| {
                let mut hex = String::with_capacity(16);
                let _ = write!(hex, "{p}");
                hex
            }),
        });
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanRecorder {
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.record(id, &ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.record(&id, &ctx);
        // Span ids are reused by the registry after close.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seen
            .remove(&id);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session")
    }
}
