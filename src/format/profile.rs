//! Whole-line profiles: the name of every key a JSON line carries (time,
//! level and its values, message, target, trace context, errors, source
//! location) and where static fields go, for OpenTelemetry, Elastic Common
//! Schema, Google Cloud Logging and Datadog.

use std::borrow::Cow;

use super::fields::ExceptionKeys;
use super::keys::TraceKeys;

/// The names a [`JsonFormat`](crate::JsonFormat) gives to the members of a
/// line, chosen for one log platform.
///
/// | | [`opentelemetry`](Self::opentelemetry) (default) | [`ecs`](Self::ecs) | [`google_cloud`](Self::google_cloud) | [`datadog`](Self::datadog) |
/// |---|---|---|---|---|
/// | time | `timestamp` | `@timestamp` | `time` | `timestamp` |
/// | level | `level`: `TRACE`…`ERROR` | `log.level`: `trace`…`error` | `severity`: `DEBUG`, `INFO`, `WARNING`, `ERROR` | `status`: `debug`, `info`, `warning`, `error` |
/// | message | `message` | `message` | `message` | `message` |
/// | target | `target` | `log.logger` | `target` | `logger.name` |
/// | trace context | `trace_id`, `span_id`, `trace_flags` | `trace.id`, `span.id` | `logging.googleapis.com/trace` (`projects/<id>/traces/<trace>`), `…/spanId`, `…/trace_sampled` (bool) | `dd.trace_id`, `dd.span_id` (decimal, low 64 bits) |
/// | first `dyn Error` field | `exception.type`, `exception.message` | `error.type`, `error.message` | — | `error.kind`, `error.message` |
/// | source location | `code.file.path`, `code.line.number` | `log.origin.file.name`, `log.origin.file.line` | `logging.googleapis.com/sourceLocation` `{file, line, function}` | `code.file.path`, `code.line.number` |
/// | static fields | top level | top level (`deployment.environment.name` → `service.environment`), plus `ecs.version` | under `logging.googleapis.com/labels` | top level (`service.name` → `dd.service`, `service.version` → `dd.version`, `deployment.environment.name` → `dd.env`) |
///
/// Every line also has `span`, `spans` (when on), `fields` (nested
/// placement), `parent_span_id` (when on, encoded like the span id) and
/// `dropped_attributes_count` (when members were dropped) under those
/// names. Any key can be renamed; the format resolves collisions (see
/// [`JsonFormat::validate`](crate::JsonFormat::validate)).
///
/// ```
/// use tracing_correlation::{JsonFormat, Profile};
///
/// let format = JsonFormat::new()
///     .with_profile(Profile::google_cloud("my-project"))
///     .with_static_field("service.name", "checkout");
/// # drop(format);
///
/// // Your own names, starting from a preset.
/// let custom = Profile::opentelemetry()
///     .with_level_key("severity")
///     .with_level_names(["trace", "debug", "info", "warn", "error"]);
/// # drop(custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub(crate) timestamp: Cow<'static, str>,
    pub(crate) level: Cow<'static, str>,
    /// For `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`.
    pub(crate) level_names: [Cow<'static, str>; 5],
    pub(crate) message: Cow<'static, str>,
    pub(crate) target: Cow<'static, str>,
    pub(crate) trace: TraceKeys,
    pub(crate) exception: ExceptionNames,
    pub(crate) location: LocationKeys,
    pub(crate) statics: StaticPlacement,
    /// Members every line of this profile carries (`ecs.version`).
    pub(crate) constants: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

/// The keys of an event's first error (see [`ExceptionKeys`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExceptionNames {
    pub(crate) type_key: Option<Cow<'static, str>>,
    pub(crate) message_key: Option<Cow<'static, str>>,
    pub(crate) replaces_field: bool,
}

impl ExceptionNames {
    pub(crate) fn keys(&self) -> ExceptionKeys {
        ExceptionKeys {
            type_key: self.type_key.clone(),
            message_key: self.message_key.clone(),
            replaces_field: self.replaces_field,
        }
    }
}

/// How the event's source location is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocationKeys {
    /// Top-level file and line keys.
    Flat {
        file: Cow<'static, str>,
        line: Cow<'static, str>,
    },
    /// Google Cloud's `sourceLocation` object: `file`, `line` (a string, as
    /// the `LogEntrySourceLocation` JSON mapping has it) and `function`
    /// (the module path).
    GoogleCloud,
}

/// The Google Cloud source location key.
pub(crate) const GOOGLE_SOURCE_LOCATION: &str = "logging.googleapis.com/sourceLocation";
/// The Google Cloud labels key.
const GOOGLE_LABELS: &str = "logging.googleapis.com/labels";
/// The ECS version the ECS profile's names follow.
pub(crate) const ECS_VERSION: &str = "8.11.0";

/// Where static fields go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaticPlacement {
    /// Top-level members; well-known OpenTelemetry resource keys renamed
    /// by the table.
    TopLevel {
        renames: &'static [(&'static str, &'static str)],
    },
    /// Members of one object under this key (string values only).
    Object(Cow<'static, str>),
}

impl StaticPlacement {
    /// The key a static field is written under.
    pub(crate) fn key<'a>(&self, key: &'a str) -> &'a str {
        match self {
            Self::TopLevel { renames } => renames
                .iter()
                .find(|(from, _)| *from == key)
                .map_or(key, |(_, to)| to),
            Self::Object(_) => key,
        }
    }
}

const LEVELS_UPPER: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];

fn names(names: [&'static str; 5]) -> [Cow<'static, str>; 5] {
    names.map(Cow::Borrowed)
}

impl Profile {
    /// OpenTelemetry (the default): `timestamp`, `level` (`INFO`…),
    /// `target`, `message`, `trace_id`/`span_id`/`trace_flags` as in
    /// OpenTelemetry's "Trace Context in non-OTLP Log Formats",
    /// `exception.type`/`exception.message` for the first error, source
    /// location as `code.file.path`/`code.line.number`, static fields at the
    /// top level under their resource attribute names (`service.name`…).
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new()
    ///     .with_profile(tracing_correlation::Profile::opentelemetry());
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn opentelemetry() -> Self {
        Self {
            timestamp: Cow::Borrowed("timestamp"),
            level: Cow::Borrowed("level"),
            level_names: names(LEVELS_UPPER),
            message: Cow::Borrowed("message"),
            target: Cow::Borrowed("target"),
            trace: TraceKeys::opentelemetry(),
            exception: ExceptionNames {
                type_key: Some(Cow::Borrowed("exception.type")),
                message_key: Some(Cow::Borrowed("exception.message")),
                replaces_field: false,
            },
            location: LocationKeys::Flat {
                file: Cow::Borrowed("code.file.path"),
                line: Cow::Borrowed("code.line.number"),
            },
            statics: StaticPlacement::TopLevel { renames: &[] },
            constants: Vec::new(),
        }
    }

    /// Elastic Common Schema, as the ecs-logging specification asks:
    /// `@timestamp`, `log.level` (lowercase), `message`, `ecs.version`
    /// (8.11.0), `log.logger` for the target, `trace.id`/`span.id`,
    /// `error.type`/`error.message` for the first error (written instead of
    /// the field itself, whose text is the message),
    /// `log.origin.file.name`/`log.origin.file.line`, and static fields at the
    /// top level with `deployment.environment.name` written as
    /// `service.environment`.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new()
    ///     .with_profile(tracing_correlation::Profile::ecs());
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn ecs() -> Self {
        Self {
            timestamp: Cow::Borrowed("@timestamp"),
            level: Cow::Borrowed("log.level"),
            level_names: names(["trace", "debug", "info", "warn", "error"]),
            message: Cow::Borrowed("message"),
            target: Cow::Borrowed("log.logger"),
            trace: TraceKeys::ecs(),
            exception: ExceptionNames {
                type_key: Some(Cow::Borrowed("error.type")),
                message_key: Some(Cow::Borrowed("error.message")),
                replaces_field: true,
            },
            location: LocationKeys::Flat {
                file: Cow::Borrowed("log.origin.file.name"),
                line: Cow::Borrowed("log.origin.file.line"),
            },
            statics: StaticPlacement::TopLevel {
                renames: &[
                    ("deployment.environment.name", "service.environment"),
                    ("deployment.environment", "service.environment"),
                ],
            },
            constants: vec![(Cow::Borrowed("ecs.version"), Cow::Borrowed(ECS_VERSION))],
        }
    }

    /// Google Cloud Logging's structured logging special fields: `severity`
    /// with Cloud Logging's names (`TRACE` and `DEBUG` → `DEBUG`, `WARN` →
    /// `WARNING`), `message`, `time`, `logging.googleapis.com/trace` as
    /// `projects/<project_id>/traces/<trace id>`,
    /// `logging.googleapis.com/spanId`,
    /// `logging.googleapis.com/trace_sampled` (a JSON boolean),
    /// `logging.googleapis.com/sourceLocation` when the source location is on,
    /// and static fields as the entry's labels
    /// (`logging.googleapis.com/labels`).
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new()
    ///     .with_profile(tracing_correlation::Profile::google_cloud("my-project"));
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn google_cloud(project_id: impl Into<String>) -> Self {
        Self {
            timestamp: Cow::Borrowed("time"),
            level: Cow::Borrowed("severity"),
            level_names: names(["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR"]),
            message: Cow::Borrowed("message"),
            target: Cow::Borrowed("target"),
            trace: TraceKeys::google_cloud(project_id),
            exception: ExceptionNames::default(),
            location: LocationKeys::GoogleCloud,
            statics: StaticPlacement::Object(Cow::Borrowed(GOOGLE_LABELS)),
            constants: Vec::new(),
        }
    }

    /// Datadog: `status` (`debug`, `info`, `warning`, `error`; `TRACE` is
    /// `debug`), `message`, `timestamp`, `logger.name` for the target,
    /// `dd.trace_id`/`dd.span_id` (decimal low 64 bits),
    /// `error.kind`/`error.message` for the first error (written instead of
    /// the field itself), and static fields at the top level with
    /// `service.name`, `service.version` and `deployment.environment.name`
    /// written as `dd.service`, `dd.version` and `dd.env`.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new()
    ///     .with_profile(tracing_correlation::Profile::datadog())
    ///     .with_static_field("service.name", "checkout");
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn datadog() -> Self {
        Self {
            timestamp: Cow::Borrowed("timestamp"),
            level: Cow::Borrowed("status"),
            level_names: names(["debug", "debug", "info", "warning", "error"]),
            message: Cow::Borrowed("message"),
            target: Cow::Borrowed("logger.name"),
            trace: TraceKeys::datadog(),
            exception: ExceptionNames {
                type_key: Some(Cow::Borrowed("error.kind")),
                message_key: Some(Cow::Borrowed("error.message")),
                replaces_field: true,
            },
            location: LocationKeys::Flat {
                file: Cow::Borrowed("code.file.path"),
                line: Cow::Borrowed("code.line.number"),
            },
            statics: StaticPlacement::TopLevel {
                renames: &[
                    ("service.name", "dd.service"),
                    ("service.version", "dd.version"),
                    ("deployment.environment.name", "dd.env"),
                    ("deployment.environment", "dd.env"),
                ],
            },
            constants: Vec::new(),
        }
    }

    /// Names the timestamp key.
    ///
    /// ```
    /// let profile = tracing_correlation::Profile::opentelemetry().with_timestamp_key("ts");
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_timestamp_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.timestamp = key.into();
        self
    }

    /// Names the level key.
    ///
    /// ```
    /// let profile = tracing_correlation::Profile::opentelemetry().with_level_key("severity");
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_level_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.level = key.into();
        self
    }

    /// Names the level values, for `TRACE`, `DEBUG`, `INFO`, `WARN` and
    /// `ERROR` in that order.
    ///
    /// ```
    /// let profile = tracing_correlation::Profile::opentelemetry()
    ///     .with_level_names(["trace", "debug", "info", "warn", "error"]);
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_level_names(mut self, names: [impl Into<Cow<'static, str>>; 5]) -> Self {
        self.level_names = names.map(Into::into);
        self
    }

    /// Names the message key.
    ///
    /// ```
    /// let profile = tracing_correlation::Profile::opentelemetry().with_message_key("msg");
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_message_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.message = key.into();
        self
    }

    /// Names the target key.
    ///
    /// ```
    /// let profile = tracing_correlation::Profile::opentelemetry().with_target_key("logger");
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_target_key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.target = key.into();
        self
    }

    /// Chooses the trace context keys and encodings.
    ///
    /// ```
    /// use tracing_correlation::{Profile, TraceKeys};
    ///
    /// let profile = Profile::opentelemetry()
    ///     .with_trace_keys(TraceKeys::custom("traceId", "spanId", None::<&str>));
    /// # drop(profile);
    /// ```
    #[must_use]
    pub fn with_trace_keys(mut self, keys: TraceKeys) -> Self {
        self.trace = keys;
        self
    }

    /// The level value's index in `level_names`.
    pub(crate) fn level_index(level: tracing_core::Level) -> usize {
        match level {
            tracing_core::Level::TRACE => 0,
            tracing_core::Level::DEBUG => 1,
            tracing_core::Level::INFO => 2,
            tracing_core::Level::WARN => 3,
            tracing_core::Level::ERROR => 4,
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self::opentelemetry()
    }
}

/// Two members of a [`JsonFormat`](crate::JsonFormat) line configured with
/// the same key. The line stays valid — the later one is written with the
/// `fields.` prefix — but the name was almost certainly a mistake, so
/// [`JsonFormat::validate`](crate::JsonFormat::validate) reports it.
///
/// ```
/// use tracing_correlation::{JsonFormat, TraceKeys};
///
/// let format = JsonFormat::new()
///     .with_trace_keys(TraceKeys::custom("level", "span_id", None::<&str>));
/// let conflict = format.validate().unwrap_err();
/// assert_eq!(conflict.key(), "level");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {role} key `{key}` is also the line's {taken_by} key: choose another name \
     (until then the {role} is written as `{written_as}`)"
)]
pub struct KeyConflict {
    role: String,
    key: String,
    taken_by: String,
    written_as: String,
}

impl KeyConflict {
    pub(crate) fn new(role: &str, key: &str, taken_by: &str, written_as: String) -> Self {
        Self {
            role: role.to_owned(),
            key: key.to_owned(),
            taken_by: taken_by.to_owned(),
            written_as,
        }
    }

    /// The key configured twice.
    ///
    /// ```
    /// use tracing_correlation::{JsonFormat, Profile};
    ///
    /// let format = JsonFormat::new().with_profile(Profile::opentelemetry().with_level_key("message"));
    /// assert_eq!(format.validate().unwrap_err().key(), "message");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}
