//! [`CorrelatedLogger`]: trace ids added to the records of any `log::Log`.

use std::fmt;

use log::kv::{self, Key, Source, Value, VisitSource};

use crate::ids::{Hex, TraceIds};

const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";
const TRACE_FLAGS: &str = "trace_flags";

/// Wraps any `log::Log` (env_logger, log4rs, fern…) and adds the current
/// trace context to each record it passes on: `trace_id`, `span_id` and
/// `trace_flags` as key-values (lowercase hex), after the record's own.
///
/// Use it when another logger must stay in charge of `log` records; with
/// [`init_json_logging`](crate::init_json_logging) the [`LogBridge`](crate::LogBridge)
/// does better (one pipeline, one format).
///
/// * The ids are [`TraceIds::current`]: the entered `tracing` span's (a
///   [`CorrelationLayer`](crate::CorrelationLayer) must be in the `tracing`
///   subscriber) or an attached OpenTelemetry context's. A record logged
///   outside any trace is passed on unchanged.
/// * A record that already has a key-value named `trace_id`, `span_id` or
///   `trace_flags` keeps its own; that key is not added again.
/// * Loggers that print no key-values (or print them where nobody looks) can
///   get the ids in the message text too, as
///   `[trace_id=4bf9… span_id=00f0…] message`: see
///   [`with_ids_in_message`](CorrelatedLogger::with_ids_in_message).
/// * `enabled` and `flush` go straight to the wrapped logger, and
///   a disabled record costs the wrapped logger's check plus one context
///   read.
///
/// env_logger prints key-values with its `kv` feature:
///
/// ```
/// use tracing_correlation::CorrelatedLogger;
///
/// let env_logger = env_logger::Builder::from_default_env().build();
/// let max_level = env_logger.filter();
/// CorrelatedLogger::new(env_logger)
///     .install(max_level)
///     .expect("no other log logger");
/// // INFO app: handled user_id=7 trace_id=4bf9… span_id=00f0… trace_flags=01
/// ```
pub struct CorrelatedLogger<L> {
    inner: L,
    ids_in_message: bool,
}

impl<L> fmt::Debug for CorrelatedLogger<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CorrelatedLogger")
            .field("inner", &std::any::type_name::<L>())
            .field("ids_in_message", &self.ids_in_message)
            .finish()
    }
}

impl<L: log::Log> CorrelatedLogger<L> {
    /// Wraps `inner`; ids go into key-values only.
    ///
    /// ```
    /// let logger = tracing_correlation::CorrelatedLogger::new(env_logger::Logger::from_default_env());
    /// # drop(logger);
    /// ```
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            ids_in_message: false,
        }
    }

    /// Whether to also start each message in a trace with
    /// `[trace_id=… span_id=…] ` (off by default), for loggers that print no
    /// key-values.
    ///
    /// ```
    /// let logger = tracing_correlation::CorrelatedLogger::new(env_logger::Logger::from_default_env())
    ///     .with_ids_in_message(true);
    /// # drop(logger);
    /// ```
    #[must_use]
    pub fn with_ids_in_message(mut self, on: bool) -> Self {
        self.ids_in_message = on;
        self
    }

    /// The wrapped logger.
    ///
    /// ```
    /// let logger = tracing_correlation::CorrelatedLogger::new(env_logger::Logger::from_default_env());
    /// let _filter = logger.inner().filter();
    /// ```
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Installs this logger as the process' `log` logger and sets
    /// `log::max_level` (pass the wrapped logger's own maximum, e.g.
    /// `env_logger::Logger::filter`).
    ///
    /// # Errors
    ///
    /// If a `log` logger is already installed; nothing changes then.
    ///
    /// ```
    /// use tracing_correlation::CorrelatedLogger;
    ///
    /// CorrelatedLogger::new(env_logger::Logger::from_default_env())
    ///     .install(log::LevelFilter::Info)
    ///     .expect("no other log logger");
    /// ```
    pub fn install(self, max_level: log::LevelFilter) -> Result<(), log::SetLoggerError>
    where
        L: 'static,
    {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(max_level);
        Ok(())
    }

    fn pass_on(&self, record: &log::Record<'_>, args: fmt::Arguments<'_>, key_values: &dyn Source) {
        let mut builder = log::Record::builder();
        builder
            .args(args)
            .level(record.level())
            .target(record.target())
            .line(record.line())
            .key_values(key_values);
        match record.module_path_static() {
            Some(path) => builder.module_path_static(Some(path)),
            None => builder.module_path(record.module_path()),
        };
        match record.file_static() {
            Some(file) => builder.file_static(Some(file)),
            None => builder.file(record.file()),
        };
        self.inner.log(&builder.build());
    }
}

impl<L: log::Log> log::Log for CorrelatedLogger<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let Some(ids) = TraceIds::current() else {
            self.inner.log(record);
            return;
        };
        let with_ids = WithIds::new(record.key_values(), &ids);
        if self.ids_in_message {
            self.pass_on(
                record,
                format_args!(
                    "[trace_id={} span_id={}] {}",
                    with_ids.trace_id,
                    with_ids.span_id,
                    record.args()
                ),
                &with_ids,
            );
        } else {
            self.pass_on(record, *record.args(), &with_ids);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// A record's key-values followed by the trace ids.
struct WithIds<'a> {
    own: &'a dyn Source,
    trace_id: Hex<32>,
    span_id: Hex<16>,
    trace_flags: Hex<2>,
    /// Which of our keys the record already has (trace, span, flags).
    taken: [bool; 3],
}

impl<'a> WithIds<'a> {
    fn new(own: &'a dyn Source, ids: &TraceIds) -> Self {
        struct Taken([bool; 3]);
        impl<'kvs> VisitSource<'kvs> for Taken {
            fn visit_pair(&mut self, key: Key<'kvs>, _value: Value<'kvs>) -> Result<(), kv::Error> {
                for (taken, name) in self.0.iter_mut().zip([TRACE_ID, SPAN_ID, TRACE_FLAGS]) {
                    *taken |= key.as_str() == name;
                }
                Ok(())
            }
        }
        let mut taken = Taken([false; 3]);
        let _ = own.visit(&mut taken);
        Self {
            own,
            trace_id: ids.trace_id_hex(),
            span_id: ids.span_id_hex(),
            trace_flags: ids.trace_flags_hex(),
            taken: taken.0,
        }
    }
}

impl Source for WithIds<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        self.own.visit(visitor)?;
        let ours = [
            (TRACE_ID, self.trace_id.as_str()),
            (SPAN_ID, self.span_id.as_str()),
            (TRACE_FLAGS, self.trace_flags.as_str()),
        ];
        for ((key, value), taken) in ours.into_iter().zip(self.taken) {
            if !taken {
                visitor.visit_pair(Key::from_str(key), Value::from(value))?;
            }
        }
        Ok(())
    }
}
