//! The JSON event formatter: one object per line, trace context included.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write};

use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::baggage::BaggageFields;
use super::escape::{write_escaped, write_quoted, Escaping};
use super::fields::{
    reserved_bits, ExceptionKeys, JsonFields, KeySet, MessageOnly, Pass, DROPPED_KEY, RENAME_PREFIX,
};
use super::keys::{RenderedKeys, TraceKeys};
use super::profile::{KeyConflict, LocationKeys, Profile, StaticPlacement, GOOGLE_SOURCE_LOCATION};
use super::time::Rfc3339Micros;
use crate::ids::TraceIds;
use crate::layer::with_span_data;

/// What to write when an event belongs to no valid trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingIds {
    /// Leave the trace keys out (the OpenTelemetry recommendation). The
    /// default.
    #[default]
    Omit,
    /// Write all-zero ids (and flags `00`), for pipelines that want every
    /// line to have the keys.
    Zeros,
}

/// Where an event's own fields go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldPlacement {
    /// Top-level keys beside `message` (the default). A field whose name is
    /// already taken (`level`, `trace_id`, another field…) is written as
    /// `fields.<name>`.
    #[default]
    Flatten,
    /// Under a `"fields":{…}` object; `message` stays top-level.
    Nested,
}

/// A [`FormatEvent`](https://docs.rs/tracing-subscriber/0.3/tracing_subscriber/fmt/trait.FormatEvent.html) that writes each event as one JSON object per line:
///
/// ```json
/// {"timestamp":"2026-11-21T19:01:14.123456Z","level":"INFO","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","trace_flags":"01","target":"app","message":"handled","status":200,"span":{"name":"request","method":"GET"}}
/// ```
///
/// * `trace_id` / `span_id` / `trace_flags` are the event's trace context
///   (see [`Profile`] and [`TraceKeys`] for other key names); left out when
///   there is none (see [`MissingIds`]).
/// * An event inside a span gets the current context's ids; an event with an
///   explicit parent (`info!(parent: &span, …)`) gets that span's ids.
/// * Every string is escaped; no key is ever written twice: an event field
///   named like a key already on the line is written as `fields.<name>`
///   (repeated as needed, at most 32 times); members beyond what the line
///   can hold (see below) are dropped and counted in
///   `dropped_attributes_count`.
/// * A `dyn Error` field (`error = &err as &dyn Error`) is written as its
///   `Display` text, plus `<name>.chain`: the `Display` text of each of its
///   sources, outermost first, at most 8. The profile may also want the
///   first error's type and message under its own keys (OpenTelemetry's
///   `exception.type` / `exception.message`); the type is the name the
///   error's `Debug` output starts with (`MyError { .. }` → `MyError`), left
///   out when it starts with anything else.
/// * Span fields come pre-rendered from the [`CorrelationLayer`](crate::CorrelationLayer),
///   which must be in the same subscriber for `span`/`spans` to carry fields.
///
/// Bounds: a line takes at most 128 members from sources without a bound of
/// their own (the key-values of a forwarded `log` record, allowlisted
/// baggage); an event's own fields (at most 32, as `tracing` allows) always
/// fit.
///
/// Nothing is allocated per event for ordinary fields.
///
/// ```
/// use tracing_correlation::{CorrelationLayer, FieldPlacement, JsonFormat, Profile};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let format = JsonFormat::new()
///     .with_profile(Profile::google_cloud("my-project"))
///     .with_static_field("service.name", "checkout")
///     .with_fields(FieldPlacement::Nested)
///     .with_span_list(true);
/// let subscriber = tracing_subscriber::registry()
///     .with(CorrelationLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(format));
/// # drop(subscriber);
/// ```
#[derive(Debug, Clone)]
pub struct JsonFormat<T = Rfc3339Micros> {
    timer: Option<T>,
    /// The timer is the default [`Rfc3339Micros`]: its text is written
    /// directly (it needs no escaping).
    default_timer: bool,
    config: Config,
    /// Everything `config` decides, rendered once.
    layout: Layout,
}

/// The options, as set.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // independent options, each with its own setter
struct Config {
    profile: Profile,
    missing: MissingIds,
    placement: FieldPlacement,
    current_span: bool,
    span_list: bool,
    target: bool,
    parent_span_id: bool,
    source_location: bool,
    /// In insertion order; a key set again keeps its place, takes the new
    /// value.
    static_fields: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    baggage: BaggageFields,
}

/// The constant text of a line, rendered from [`Config`] when it changes.
#[derive(Debug, Clone)]
struct Layout {
    /// `"timestamp":"`.
    timestamp: String,
    /// `"level":"INFO"` for each level, in [`Profile::level_index`] order.
    levels: [String; 5],
    trace: RenderedKeys,
    /// `,"parent_span_id":"`.
    parent: String,
    /// `,"target":`.
    target: String,
    /// `,"message":`.
    message: String,
    location: RenderedLocation,
    /// Every static member, each with its leading comma.
    statics: String,
    /// `,"dropped_attributes_count":`.
    dropped: String,
    /// Top-level keys an event field may not take.
    reserved: Vec<Cow<'static, str>>,
    reserved_bits: u64,
    /// Whether no reserved key is named like a forwarded record's location
    /// key (`log.file`…), so those are written without checks.
    location_keys_free: bool,
    exception: ExceptionKeys,
    conflicts: Vec<KeyConflict>,
    /// Names this layout in the per-thread [`PLAIN_KEYS`] memo: a new
    /// layout (another profile, other static fields) gets a new one.
    id: u64,
}

/// Source of [`Layout::id`]s.
static NEXT_LAYOUT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug, Clone)]
enum RenderedLocation {
    /// `,"code.file.path":` and `,"code.line.number":`.
    Flat { file: String, line: String },
    /// `,"logging.googleapis.com/sourceLocation":{`.
    Object { open: String },
}

impl JsonFormat {
    /// The default format: the OpenTelemetry profile, timestamp, level,
    /// trace context, target, message, flattened fields and the current span.
    #[must_use]
    pub fn new() -> Self {
        let config = Config {
            profile: Profile::opentelemetry(),
            missing: MissingIds::Omit,
            placement: FieldPlacement::Flatten,
            current_span: true,
            span_list: false,
            target: true,
            parent_span_id: false,
            source_location: false,
            static_fields: Vec::new(),
            baggage: BaggageFields::default(),
        };
        Self {
            timer: Some(Rfc3339Micros),
            default_timer: true,
            layout: Layout::new(&config),
            config,
        }
    }
}

impl Default for JsonFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> JsonFormat<T> {
    /// Uses another timer for `timestamp` (any
    /// `tracing_subscriber::fmt::time::FormatTime`, e.g. a fixed clock in tests).
    #[must_use]
    pub fn with_timer<T2>(self, timer: T2) -> JsonFormat<T2> {
        JsonFormat {
            timer: Some(timer),
            default_timer: false,
            config: self.config,
            layout: self.layout,
        }
    }

    /// Leaves `timestamp` out (for platforms that stamp lines themselves).
    #[must_use]
    pub fn without_time(mut self) -> Self {
        self.timer = None;
        self
    }

    fn relayout(mut self) -> Self {
        self.layout = Layout::new(&self.config);
        self
    }

    /// Names every key of the line for one log platform (see [`Profile`]);
    /// the OpenTelemetry profile is the default.
    ///
    /// ```
    /// use tracing_correlation::{JsonFormat, Profile};
    ///
    /// let format = JsonFormat::new().with_profile(Profile::ecs());
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.config.profile = profile;
        self.relayout()
    }

    /// Chooses the trace context key names and encodings, keeping the rest
    /// of the profile.
    #[must_use]
    pub fn with_trace_keys(mut self, keys: TraceKeys) -> Self {
        self.config.profile.trace = keys;
        self.relayout()
    }

    /// Adds a member written on every line, such as `service.name`,
    /// `service.version` or `deployment.environment.name` (OpenTelemetry's
    /// resource attribute names; the profile may rename them or put them
    /// elsewhere, see [`Profile`]). The member is rendered and escaped once,
    /// here. An event field with the same key is written as
    /// `fields.<key>`; a key set again takes the new value.
    ///
    /// ```
    /// use tracing_correlation::JsonFormat;
    ///
    /// let format = JsonFormat::new()
    ///     .with_static_field("service.name", "checkout")
    ///     .with_static_field("service.version", env!("CARGO_PKG_VERSION"));
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_static_field(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        set_static(&mut self.config.static_fields, key.into(), value.into());
        self.relayout()
    }

    /// Adds several static fields (see
    /// [`with_static_field`](Self::with_static_field)).
    ///
    /// ```
    /// use tracing_correlation::JsonFormat;
    ///
    /// let format = JsonFormat::new().with_static_fields([
    ///     ("service.name", "checkout"),
    ///     ("deployment.environment.name", "production"),
    /// ]);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_static_fields<I, K, V>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Cow<'static, str>>,
        V: Into<Cow<'static, str>>,
    {
        for (key, value) in fields {
            set_static(&mut self.config.static_fields, key.into(), value.into());
        }
        self.relayout()
    }

    /// Adds the static fields among `defaults` whose keys are not set yet
    /// (for defaults from the environment that explicit settings override).
    pub(crate) fn with_default_static_fields(mut self, defaults: Vec<(String, String)>) -> Self {
        for (key, value) in defaults {
            if !self.config.static_fields.iter().any(|(k, _)| *k == *key) {
                self.config
                    .static_fields
                    .push((Cow::Owned(key), Cow::Owned(value)));
            }
        }
        self.relayout()
    }

    /// Whether to write `parent_span_id`, the id of the parent of the line's
    /// span (off by default), so a span tree can be rebuilt from the lines
    /// alone. Written only when the line's ids are its span's own (not those
    /// of a context attached inside it) and the span has a parent span in
    /// the same trace; a span whose parent is remote (a request's caller)
    /// has none. Encoded like the profile's span id.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new().with_parent_span_id(true);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_parent_span_id(mut self, on: bool) -> Self {
        self.config.parent_span_id = on;
        self.relayout()
    }

    /// Whether to write the event's source file and line (off by default),
    /// under the profile's keys (`code.file.path` / `code.line.number`,
    /// Google Cloud's `logging.googleapis.com/sourceLocation`…). Events
    /// forwarded from `log` carry their record's location as `log.file` /
    /// `log.line` instead.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new().with_source_location(true);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_source_location(mut self, on: bool) -> Self {
        self.config.source_location = on;
        self.relayout()
    }

    /// Chooses what to write when there is no trace context.
    #[must_use]
    pub fn with_missing_ids(mut self, missing: MissingIds) -> Self {
        self.config.missing = missing;
        self
    }

    /// Chooses where event fields go.
    #[must_use]
    pub fn with_fields(mut self, placement: FieldPlacement) -> Self {
        self.config.placement = placement;
        self
    }

    /// Whether to write the current span's name and fields as `span` (on by
    /// default).
    #[must_use]
    pub fn with_current_span(mut self, on: bool) -> Self {
        self.config.current_span = on;
        self
    }

    /// Whether to write every span of the event's scope, root first, as
    /// `spans` (off by default).
    #[must_use]
    pub fn with_span_list(mut self, on: bool) -> Self {
        self.config.span_list = on;
        self
    }

    /// Whether to write the event's `target` (on by default).
    #[must_use]
    pub fn with_target(mut self, on: bool) -> Self {
        self.config.target = on;
        self
    }

    /// Copies these W3C baggage entries, when present, onto each line as
    /// top-level string members (`"tenant":"acme"`). Baggage comes from other
    /// processes, so nothing outside this list is ever written, and each value
    /// is cut to [`with_baggage_max_len`](Self::with_baggage_max_len) bytes
    /// and escaped.
    ///
    /// Values are read from the current context
    /// (`opentelemetry::Context::current()`: the baggage the entered span was
    /// created with, or an explicitly attached context), so events with an
    /// explicit parent (`info!(parent: &span, …)`) and other non-contextual
    /// events carry no baggage members. A key already taken — by our own keys
    /// (`level`, `trace_id`…) or by one of the event's fields — is written as
    /// `fields.<key>`. An empty list (the default) costs nothing per event.
    ///
    /// ```
    /// use tracing_correlation::JsonFormat;
    ///
    /// let format = JsonFormat::new()
    ///     .with_baggage_fields(["tenant", "user_id"])
    ///     .with_baggage_max_len(64);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_baggage_fields<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.config.baggage.set_keys(keys);
        self
    }

    /// The longest baggage value written, in bytes (256 by default); longer
    /// values are cut on a character boundary.
    ///
    /// ```
    /// let format = tracing_correlation::JsonFormat::new().with_baggage_max_len(32);
    /// # drop(format);
    /// ```
    #[must_use]
    pub fn with_baggage_max_len(mut self, bytes: usize) -> Self {
        self.config.baggage.set_max_value_len(bytes);
        self
    }

    /// Checks that no two members of the line were configured with the same
    /// key (a custom trace key named `level`, a static field named
    /// `message`, a profile whose level key is its message key…).
    ///
    /// Such a format still writes valid lines: keys are claimed in a fixed
    /// order — timestamp, level, target, message, `span`, `spans`, `fields`,
    /// `dropped_attributes_count`, the trace keys, `parent_span_id`, the
    /// source location keys, then static fields — and a key already claimed
    /// is written with the `fields.` prefix. This reports the first such
    /// rename, so setup code can refuse the configuration.
    ///
    /// # Errors
    ///
    /// The first [`KeyConflict`], naming both members and the key written
    /// instead.
    ///
    /// ```
    /// use tracing_correlation::JsonFormat;
    ///
    /// assert!(JsonFormat::new().validate().is_ok());
    /// let clash = JsonFormat::new().with_static_field("level", "x");
    /// assert_eq!(clash.validate().unwrap_err().key(), "level");
    /// ```
    pub fn validate(&self) -> Result<(), KeyConflict> {
        match self.layout.conflicts.first() {
            Some(conflict) => Err(conflict.clone()),
            None => Ok(()),
        }
    }
}

fn set_static(
    fields: &mut Vec<(Cow<'static, str>, Cow<'static, str>)>,
    key: Cow<'static, str>,
    value: Cow<'static, str>,
) {
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => fields.push((key, value)),
    }
}

/// Hands out the line's keys in order, renaming (and recording) collisions.
#[derive(Default)]
struct KeyClaims {
    taken: Vec<(String, String)>,
    conflicts: Vec<KeyConflict>,
}

impl KeyClaims {
    /// The key `role` is written under: `key`, or `key` behind as many
    /// `fields.` prefixes as it takes to be free.
    fn claim(&mut self, key: &str, role: &str) -> String {
        let mut written = key.to_owned();
        let mut first_owner = None;
        while let Some((_, owner)) = self.taken.iter().find(|(k, _)| *k == written) {
            first_owner.get_or_insert_with(|| owner.clone());
            written.insert_str(0, RENAME_PREFIX);
        }
        if let Some(owner) = first_owner {
            self.conflicts
                .push(KeyConflict::new(role, key, &owner, written.clone()));
        }
        self.taken.push((written.clone(), role.to_owned()));
        written
    }
}

/// `,"key":` with the key escaped.
fn member_key(key: &str) -> String {
    let mut out = String::from(",\"");
    let _ = write_escaped(&mut out, key);
    out.push_str("\":");
    out
}

impl Layout {
    fn new(config: &Config) -> Self {
        let profile = &config.profile;
        let mut claims = KeyClaims::default();
        let timestamp = claims.claim(&profile.timestamp, "timestamp");
        let level = claims.claim(&profile.level, "level");
        let target = claims.claim(&profile.target, "target");
        let message = claims.claim(&profile.message, "message");
        claims.claim("span", "span object");
        claims.claim("spans", "span list");
        claims.claim("fields", "nested fields");
        claims.claim(DROPPED_KEY, "dropped count");
        let (trace_id, span_id, flags) = profile.trace.names();
        let trace_id = claims.claim(trace_id, "trace id");
        let span_id = claims.claim(span_id, "span id");
        let flags = flags.map(|flags| claims.claim(flags, "trace flags"));
        let trace = profile
            .trace
            .render_as(&trace_id, &span_id, flags.as_deref());
        let parent = if config.parent_span_id {
            let mut parent = member_key(&claims.claim("parent_span_id", "parent span id"));
            parent.push('"');
            parent
        } else {
            String::new()
        };
        let location = match &profile.location {
            LocationKeys::Flat { file, line } => {
                let (file, line) = if config.source_location {
                    (
                        member_key(&claims.claim(file, "source file")),
                        member_key(&claims.claim(line, "source line")),
                    )
                } else {
                    (String::new(), String::new())
                };
                RenderedLocation::Flat { file, line }
            }
            LocationKeys::GoogleCloud => {
                let mut open = String::new();
                if config.source_location {
                    open = member_key(&claims.claim(GOOGLE_SOURCE_LOCATION, "source location"));
                    open.push('{');
                }
                RenderedLocation::Object { open }
            }
        };
        let statics = render_statics(config, &mut claims);
        let mut level_key = String::from("\"");
        let _ = write_escaped(&mut level_key, &level);
        level_key.push_str("\":");
        let levels = profile.level_names.clone().map(|name| {
            let mut member = level_key.clone();
            let _ = write_quoted(&mut member, &name);
            member
        });
        let mut timestamp_key = String::from("\"");
        let _ = write_escaped(&mut timestamp_key, &timestamp);
        timestamp_key.push_str("\":\"");
        let reserved: Vec<Cow<'static, str>> = claims
            .taken
            .into_iter()
            .map(|(key, _)| Cow::Owned(key))
            .collect();
        Self {
            timestamp: timestamp_key,
            levels,
            trace,
            parent,
            target: member_key(&target),
            message: member_key(&message),
            location,
            statics,
            dropped: member_key(DROPPED_KEY),
            reserved_bits: reserved_bits(&reserved),
            location_keys_free: !crate::log_bridge::location_key_reserved(&reserved),
            reserved,
            exception: profile.exception.keys(),
            conflicts: claims.conflicts,
            id: NEXT_LAYOUT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// The static members (the profile's constants, then the configured
/// fields; a configured key replaces a constant's value).
fn render_statics(config: &Config, claims: &mut KeyClaims) -> String {
    let profile = &config.profile;
    let mut fields = profile.constants.clone();
    for (key, value) in &config.static_fields {
        set_static(&mut fields, key.clone(), value.clone());
    }
    let mut out = String::new();
    if fields.is_empty() {
        return out;
    }
    match &profile.statics {
        StaticPlacement::TopLevel { .. } => {
            for (key, value) in &fields {
                let key = claims.claim(profile.statics.key(key), "static field");
                out.push_str(&member_key(&key));
                let _ = write_quoted(&mut out, value);
            }
        }
        StaticPlacement::Object(object) => {
            out.push_str(&member_key(&claims.claim(object, "static fields object")));
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                // Keys are unique: `set_static` replaced repeats.
                let _ = write_quoted(&mut out, key);
                out.push(':');
                let _ = write_quoted(&mut out, value);
                if i + 1 < fields.len() {
                    out.push(',');
                }
            }
            out.push('}');
        }
    }
    out
}

impl<S, N, T> FormatEvent<S, N> for JsonFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (span, ids) = super::event_span_and_ids(ctx, event);
        // Assemble the line in a reused thread-local buffer (inlined appends
        // instead of a dynamic call per piece), then hand it over at once.
        // Logging from inside formatting finds the buffer busy and writes
        // directly instead.
        let buffered = LINE.try_with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return None;
            };
            line.clear();
            let result = self
                .write_line(&mut *line, event, span.as_ref(), ids)
                .and_then(|()| writer.write_str(&line));
            if line.capacity() > MAX_KEPT_LINE_CAPACITY {
                *line = String::new();
            }
            Some(result)
        });
        match buffered {
            Ok(Some(result)) => result,
            _ => self.write_line(&mut writer, event, span.as_ref(), ids),
        }
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Event fields checked for duplicates without allocating; more spill.
const EVENT_KEYS: usize = 16;

/// A per-thread line buffer grown past this by one huge line is released
/// after it, so a thread that once logged 50 MB does not keep 50 MB.
pub(crate) const MAX_KEPT_LINE_CAPACITY: usize = 64 * 1024;

impl<T: FormatTime> JsonFormat<T> {
    /// Writes one whole line (ending in `\n`) for `event`, which belongs to
    /// `span` (its explicit parent or the current span) and carries `ids`.
    pub(crate) fn write_line<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
        &self,
        out: &mut W,
        event: &Event<'_>,
        span: Option<&SpanRef<'a, R>>,
        ids: Option<TraceIds>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let config = &self.config;
        let layout = &self.layout;
        let facts = callsite_facts(meta, layout, config.placement == FieldPlacement::Nested);
        out.write_str("{")?;
        if let Some(timer) = &self.timer {
            out.write_str(&layout.timestamp)?;
            if self.default_timer {
                super::time::write_now(out)?;
            } else {
                write_time(out, timer)?;
            }
            out.write_str("\",")?;
        }
        out.write_str(&layout.levels[Profile::level_index(*meta.level())])?;
        match (ids, config.missing) {
            (Some(ids), _) => write_ids(out, layout, &ids)?,
            (None, MissingIds::Zeros) => layout.trace.write(out, None)?,
            (None, MissingIds::Omit) => {}
        }
        if config.parent_span_id {
            if let (Some(ids), Some(span)) = (ids, span) {
                self.write_parent_span_id(out, span, &ids)?;
            }
        }
        // Events forwarded from `log` carry their record's target in a field.
        let forwarded = crate::log_bridge::is_forwarded(meta);
        if config.target {
            out.write_str(&layout.target)?;
            match forwarded
                .then(|| crate::log_bridge::record_target(event, |t| write_quoted(out, t)))
            {
                Some(Some(written)) => written?,
                _ if facts.clean_target => {
                    out.write_str("\"")?;
                    out.write_str(meta.target())?;
                    out.write_str("\"")?;
                }
                _ => write_quoted(out, meta.target())?,
            }
        }
        if config.source_location && !forwarded {
            self.write_location(out, meta)?;
        }

        let dropped = self.write_message_and_fields(out, event, forwarded, facts)?;
        out.write_str(&layout.statics)?;
        if dropped > 0 {
            out.write_str(&layout.dropped)?;
            out.write_str(itoa::Buffer::new().format(dropped))?;
        }

        if let Some(span) = span {
            if config.current_span {
                out.write_str(",\"span\":{")?;
                write_span_members(out, span)?;
                out.write_str("}")?;
            }
            if config.span_list {
                out.write_str(",\"spans\":[")?;
                write_span_list(out, span, layout.id)?;
                out.write_str("]")?;
            }
        }
        out.write_str("}\n")
    }

    /// `parent_span_id`: the id of the parent of the line's span, when the
    /// line's ids are that span's own and the parent is in the same trace.
    fn write_parent_span_id<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
        &self,
        out: &mut W,
        span: &SpanRef<'a, R>,
        ids: &TraceIds,
    ) -> fmt::Result {
        let Some(parent) = super::parent_span_id(span, ids) else {
            return Ok(());
        };
        out.write_str(&self.layout.parent)?;
        self.layout
            .trace
            .write_span_id(out, u64::from_be_bytes(parent.to_bytes()))?;
        out.write_str("\"")
    }

    /// The event's source file and line under the profile's keys.
    fn write_location<W: Write + ?Sized>(
        &self,
        out: &mut W,
        meta: &tracing_core::Metadata<'_>,
    ) -> fmt::Result {
        match &self.layout.location {
            RenderedLocation::Flat {
                file: file_key,
                line: line_key,
            } => {
                if let Some(file) = meta.file() {
                    out.write_str(file_key)?;
                    write_quoted(out, file)?;
                }
                if let Some(line) = meta.line() {
                    out.write_str(line_key)?;
                    out.write_str(itoa::Buffer::new().format(line))?;
                }
            }
            RenderedLocation::Object { open } => {
                out.write_str(open)?;
                let mut first = true;
                let mut lead = |out: &mut W| {
                    let lead = if first { "" } else { "," };
                    first = false;
                    out.write_str(lead)
                };
                if let Some(file) = meta.file() {
                    lead(out)?;
                    out.write_str("\"file\":")?;
                    write_quoted(out, file)?;
                }
                if let Some(line) = meta.line() {
                    lead(out)?;
                    // A string: `LogEntrySourceLocation.line` is an int64,
                    // which the proto3 JSON mapping writes as a string.
                    out.write_str("\"line\":\"")?;
                    out.write_str(itoa::Buffer::new().format(line))?;
                    out.write_str("\"")?;
                }
                if let Some(function) = meta.module_path() {
                    lead(out)?;
                    out.write_str("\"function\":")?;
                    write_quoted(out, function)?;
                }
                out.write_str("}")?;
            }
        }
        Ok(())
    }

    /// Writes `message`, the event's fields (or a forwarded record's
    /// key-values) and allowlisted baggage; returns how many members were
    /// dropped.
    fn write_message_and_fields<W: Write + ?Sized>(
        &self,
        out: &mut W,
        event: &Event<'_>,
        forwarded: bool,
        facts: CallsiteFacts,
    ) -> Result<u32, fmt::Error> {
        let meta = event.metadata();
        let config = &self.config;
        let layout = &self.layout;
        // `tracing`'s macros put `message` first, so one pass writes it
        // before the fields; otherwise a first pass picks it out.
        let mut names = meta.fields().iter();
        // (The bridge writes a forwarded record's fields itself, after it.)
        let message_first = !forwarded && names.next().is_some_and(|f| f.name() == "message");
        let pass = if message_first {
            Pass::InlineMessage
        } else {
            if meta.fields().field("message").is_some() {
                out.write_str(&layout.message)?;
                out.write_str("\"")?;
                let staged = if forwarded {
                    crate::log_bridge::write_message(&mut *out)
                } else {
                    None
                };
                if let Some(written) = staged {
                    written?;
                } else {
                    let mut message = MessageOnly {
                        out: &mut *out,
                        found: false,
                        result: Ok(()),
                    };
                    event.record(&mut message);
                    message.result?;
                }
                out.write_str("\"")?;
            }
            Pass::SkipMessage
        };
        let (reserved, bits, opening): (&[Cow<'static, str>], u64, &str) = match config.placement {
            FieldPlacement::Flatten => (&layout.reserved, layout.reserved_bits, ","),
            FieldPlacement::Nested => (&[], 0, ",\"fields\":{"),
        };
        let with_baggage = config.baggage.is_active()
            && event.is_contextual()
            && !super::is_opentelemetry_internal(meta.target());
        // Flattened, baggage shares the event's key set (the event's own
        // fields keep their names); nested, it goes beside `fields`.
        let flat_baggage = (with_baggage && config.placement == FieldPlacement::Flatten)
            .then_some(&config.baggage);
        let (wrote_any, mut dropped) = if forwarded {
            // Adds the record's key-values, rendered by the bridge.
            crate::log_bridge::write_json_fields(
                &mut *out,
                event,
                (
                    reserved,
                    bits,
                    reserved.is_empty() || layout.location_keys_free,
                ),
                opening,
                flat_baggage,
            )?
        } else {
            // A callsite whose keys cannot collide (checked once per thread)
            // skips the per-member duplicate check, the bulk of a wide
            // event's cost.
            if flat_baggage.is_none() && facts.plain_keys {
                // No key to remember: an empty key set (building the
                // 16-slot one costs more than this whole branch).
                let mut keys = if facts.clean_names {
                    KeySet::<0>::unchecked_clean()
                } else {
                    KeySet::<0>::unchecked()
                };
                let mut fields = JsonFields::new(&mut *out, &mut keys, pass, opening, ",")
                    .with_message_key(&layout.message)
                    .with_exception_keys(Some(&layout.exception));
                event.record(&mut fields);
                let wrote_any = fields.wrote_any();
                fields.result?;
                (wrote_any, 0)
            } else {
                let mut keys = KeySet::<EVENT_KEYS>::with_bits(reserved, bits);
                let mut fields = JsonFields::new(&mut *out, &mut keys, pass, opening, ",")
                    .with_message_key(&layout.message)
                    .with_exception_keys(Some(&layout.exception));
                event.record(&mut fields);
                let wrote_any = fields.wrote_any();
                fields.result?;
                if let Some(baggage) = flat_baggage {
                    baggage.write(out, &mut keys)?;
                }
                (wrote_any, keys.dropped())
            }
        };
        if wrote_any && config.placement == FieldPlacement::Nested {
            out.write_str("}")?;
        }
        if with_baggage && config.placement == FieldPlacement::Nested {
            let mut top_level =
                KeySet::<EVENT_KEYS>::with_bits(&layout.reserved, layout.reserved_bits);
            config.baggage.write(out, &mut top_level)?;
            dropped = dropped.saturating_add(top_level.dropped());
        }
        Ok(dropped)
    }
}

thread_local! {
    /// The ids members this thread wrote last (`"trace_id":"…",…` with the
    /// layout's keys), keyed by layout id and the ids: consecutive lines of
    /// one span copy them whole.
    static LAST_IDS: RefCell<(u64, u128, u64, u8, String)> =
        const { RefCell::new((0, 0, 0, 0, String::new())) };
}

/// Writes the trace members for `ids` under `layout`'s keys.
fn write_ids<W: Write + ?Sized>(out: &mut W, layout: &Layout, ids: &TraceIds) -> fmt::Result {
    let key = (
        layout.id,
        u128::from_be_bytes(ids.trace_id().to_bytes()),
        u64::from_be_bytes(ids.span_id().to_bytes()),
        ids.trace_flags().to_u8(),
    );
    let cached = LAST_IDS.try_with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        let (id, trace, span, flags, text) = &mut *last;
        if (*id, *trace, *span, *flags) != key {
            text.clear();
            if layout.trace.write(text, Some(ids)).is_err() {
                *id = 0;
                return None;
            }
            (*id, *trace, *span, *flags) = key;
        }
        Some(out.write_str(text))
    });
    match cached {
        Ok(Some(written)) => written,
        _ => layout.trace.write(out, Some(ids)),
    }
}

/// Slots of the per-thread memo of plain callsites (direct-mapped by the
/// metadata's address).
const PLAIN_SLOTS: usize = 64;

thread_local! {
    /// Per thread: (metadata address, layout id and placement, plain?) of
    /// the callsites last seen in each slot. Per thread, so the hot path
    /// shares no cache line with other threads and takes no lock.
    static PLAIN_KEYS: [std::cell::Cell<(usize, u64, CallsiteFacts)>; PLAIN_SLOTS] =
        const { [const { std::cell::Cell::new((0, 0, CallsiteFacts::NONE)) }; PLAIN_SLOTS] };
}

/// What is known of a callsite once and for all (for one layout).
#[derive(Clone, Copy)]
struct CallsiteFacts {
    /// See [`keys_cannot_collide`].
    plain_keys: bool,
    /// The target needs no escaping.
    clean_target: bool,
    /// No field name needs escaping.
    clean_names: bool,
}

impl CallsiteFacts {
    /// Nothing known: every check is made.
    const NONE: Self = Self {
        plain_keys: false,
        clean_target: false,
        clean_names: false,
    };
}

/// What is known of `meta`'s callsite under `layout`: whether every key an
/// event of it can claim is free and unique (so the checked key set would
/// answer "no rename" for each, and the check is skipped), and whether its
/// target needs escaping. Decided once per callsite per thread.
fn callsite_facts(
    meta: &tracing_core::Metadata<'_>,
    layout: &Layout,
    nested: bool,
) -> CallsiteFacts {
    let address = std::ptr::from_ref(meta) as usize;
    let key = layout.id << 1 | u64::from(nested);
    let slot = (address >> 4) % PLAIN_SLOTS;
    PLAIN_KEYS
        .try_with(|memo| {
            let (seen, seen_key, facts) = memo[slot].get();
            if seen == address && seen_key == key {
                return facts;
            }
            let reserved: &[Cow<'static, str>] = if nested { &[] } else { &layout.reserved };
            let facts = CallsiteFacts {
                plain_keys: keys_cannot_collide(meta.fields(), reserved, &layout.exception),
                clean_target: !super::escape::may_need_escape(meta.target().as_bytes()),
                clean_names: meta
                    .fields()
                    .iter()
                    .all(|f| !super::escape::may_need_escape(f.name().as_bytes())),
            };
            memo[slot].set((address, key, facts));
            facts
        })
        .unwrap_or(CallsiteFacts::NONE)
}

/// The keys a field set can claim: each field's name (one `message` is
/// written under the message key instead), `<name>.chain` for an error's
/// sources, and the exception keys. None may be reserved or appear twice.
fn keys_cannot_collide(
    fields: &tracing_core::field::FieldSet,
    reserved: &[Cow<'static, str>],
    exception: &ExceptionKeys,
) -> bool {
    use super::fields::CHAIN_SUFFIX;
    let names = || fields.iter().map(|f| f.name());
    if names().filter(|&n| n == "message").count() > 1 {
        return false;
    }
    let names = || names().filter(|&n| n != "message");
    let chained = |key: &str, name: &str| {
        key.len() == name.len() + CHAIN_SUFFIX.len()
            && key.starts_with(name)
            && key.ends_with(CHAIN_SUFFIX)
    };
    let fixed = [
        exception.type_key.as_deref(),
        exception.message_key.as_deref(),
    ];
    let fixed = || fixed.iter().flatten().copied();
    let is_reserved = |key: &str| reserved.iter().any(|r| r == key);
    if let [Some(a), Some(b)] = [
        exception.type_key.as_deref(),
        exception.message_key.as_deref(),
    ] {
        if a == b {
            return false;
        }
    }
    if fixed().any(is_reserved) {
        return false;
    }
    for (i, name) in names().enumerate() {
        if is_reserved(name) || fixed().any(|key| key == name) {
            return false;
        }
        // `<name>.chain` may not be reserved, an exception key or a name.
        if reserved.iter().any(|r| chained(r, name)) || fixed().any(|k| chained(k, name)) {
            return false;
        }
        for other in names().skip(i + 1) {
            if other == name || chained(other, name) || chained(name, other) {
                return false;
            }
        }
    }
    true
}

/// Writes the timer's output escaped; short output (any sane timestamp) goes
/// through a stack buffer and is escaped in one go.
fn write_time<T: FormatTime, W: Write + ?Sized>(out: &mut W, timer: &T) -> fmt::Result {
    let mut stack = StackText::default();
    if timer.format_time(&mut Writer::new(&mut stack)).is_ok() {
        write_escaped(out, stack.as_str())
    } else if stack.overflowed {
        timer.format_time(&mut Writer::new(&mut Escaping(out)))
    } else {
        Err(fmt::Error)
    }
}

/// Up to 64 bytes of text on the stack.
struct StackText {
    bytes: [u8; 64],
    len: usize,
    overflowed: bool,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
            overflowed: false,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.bytes.len() {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

thread_local! {
    /// The span list this thread rendered last: the format's layout (one
    /// format's layer may see other spans than another's), the span's
    /// registry id and its own span id (registry ids are reused after a span
    /// closes; span ids are random), the span-field generation it was
    /// rendered at, and the text. Consecutive lines of one span (the common case) copy it
    /// instead of walking the scope, which costs a registry lookup and an
    /// extensions lock per ancestor.
    static LAST_SPAN_LIST: RefCell<(SpanListKey, String)> =
        const { RefCell::new(((0, 0, 0, 0), String::new())) };
}

/// Layout id, registry id, span id, span-field generation.
type SpanListKey = (u64, u64, u64, u64);

/// Writes `{…},{…}`: every span of `span`'s scope, root first.
fn write_span_list<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
    out: &mut W,
    span: &SpanRef<'a, R>,
    layout: u64,
) -> fmt::Result {
    let own = with_span_data(span, |data| data.ids().map(|ids| ids.span_id()))
        .flatten()
        .map(|id| u64::from_be_bytes(id.to_bytes()));
    let Some(own) = own else {
        return render_span_list(out, span);
    };
    let key = (
        layout,
        span.id().into_u64(),
        own,
        crate::format::span_fields::generation(),
    );
    let cached = LAST_SPAN_LIST.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return None;
        };
        let (seen, text) = &mut *last;
        if *seen != key {
            text.clear();
            if render_span_list(text, span).is_err() {
                *seen = (0, 0, 0, 0);
                return None;
            }
            *seen = key;
        }
        let written = out.write_str(text);
        if text.capacity() > MAX_KEPT_LINE_CAPACITY {
            *text = String::new();
            *seen = (0, 0, 0, 0);
        }
        Some(written)
    });
    match cached {
        Ok(Some(written)) => written,
        _ => render_span_list(out, span),
    }
}

/// Walks `span`'s scope, root first, writing each span's object.
fn render_span_list<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
    out: &mut W,
    span: &SpanRef<'a, R>,
) -> fmt::Result {
    for (i, span) in span.scope().from_root().enumerate() {
        out.write_str(if i == 0 { "{" } else { ",{" })?;
        write_span_members(out, &span)?;
        out.write_str("}")?;
    }
    Ok(())
}

/// Writes a span's `"name":…` and fields (no braces).
fn write_span_members<'a, R: LookupSpan<'a>, W: Write + ?Sized>(
    out: &mut W,
    span: &SpanRef<'a, R>,
) -> fmt::Result {
    with_span_data(span, |data| data.fields.write_members(out)).unwrap_or_else(|| {
        // No correlation layer: the name is all we know.
        out.write_str("\"name\":\"")?;
        write_escaped(out, span.name())?;
        out.write_str("\"")
    })
}
