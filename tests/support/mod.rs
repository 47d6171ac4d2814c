//! Shared test support: an in-memory writer, a fixed clock, subscribers in
//! both id modes, and a strict JSON line checker.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use tracing::Dispatch;
use tracing_correlation::opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SpanData,
};
use tracing_correlation::{CorrelationLayer, JsonFormat};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// Lines written by a subscriber, kept in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
    }

    /// Every line, each checked to be one JSON object without duplicate keys.
    pub fn lines(&self) -> Vec<Value> {
        self.text().lines().map(parse_strict).collect()
    }
}

pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = CapturedWriter;
    fn make_writer(&'a self) -> CapturedWriter {
        CapturedWriter(self.0.clone())
    }
}

/// Always the same instant, so lines compare exactly.
#[derive(Clone, Copy, Debug)]
pub struct FixedTime;

impl FormatTime for FixedTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str("2026-11-21T00:00:00.000000Z")
    }
}

/// Where ids come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The correlation layer mints them.
    Standalone,
    /// The OpenTelemetry SDK does (tracing-opentelemetry layer below ours).
    Otel,
}

pub const MODES: [Mode; 2] = [Mode::Standalone, Mode::Otel];

/// A scoped subscriber writing JSON lines to memory.
pub struct Harness {
    pub mode: Mode,
    pub out: Captured,
    pub dispatch: Dispatch,
    pub provider: Option<SdkTracerProvider>,
    pub exporter: Option<InMemorySpanExporter>,
}

impl Harness {
    pub fn new(mode: Mode) -> Self {
        Self::with_format(mode, JsonFormat::new().with_timer(FixedTime))
    }

    pub fn with_format(mode: Mode, format: JsonFormat<FixedTime>) -> Self {
        let out = Captured::default();
        macro_rules! fmt_layer {
            () => {
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(format)
                    .with_writer(out.clone())
            };
        }
        match mode {
            Mode::Standalone => {
                let subscriber = tracing_subscriber::registry()
                    .with(CorrelationLayer::new())
                    .with(fmt_layer!());
                Self {
                    mode,
                    out,
                    dispatch: Dispatch::new(subscriber),
                    provider: None,
                    exporter: None,
                }
            }
            Mode::Otel => {
                let exporter = InMemorySpanExporter::default();
                let provider = SdkTracerProvider::builder()
                    .with_simple_exporter(exporter.clone())
                    .build();
                let otel = tracing_correlation::tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("test"))
                    .with_filter(filter_fn(|meta| meta.is_span()));
                let subscriber = tracing_subscriber::registry()
                    .with(otel)
                    .with(CorrelationLayer::with_opentelemetry())
                    .with(fmt_layer!());
                Self {
                    mode,
                    out,
                    dispatch: Dispatch::new(subscriber),
                    provider: Some(provider),
                    exporter: Some(exporter),
                }
            }
        }
    }

    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Spans exported so far (OpenTelemetry mode), by name.
    pub fn exported(&self, name: &str) -> SpanData {
        let spans = self
            .exporter
            .as_ref()
            .expect("otel mode")
            .get_finished_spans()
            .unwrap();
        let mut matching: Vec<_> = spans.into_iter().filter(|s| s.name == name).collect();
        assert_eq!(matching.len(), 1, "exactly one exported span named {name}");
        matching.remove(0)
    }

    pub fn lines(&self) -> Vec<Value> {
        self.out.lines()
    }
}

/// The trace keys of a line, as strings.
pub fn ids_of(line: &Value) -> Option<(String, String, String)> {
    let get = |k: &str| line.get(k).and_then(Value::as_str).map(str::to_owned);
    match (get("trace_id"), get("span_id"), get("trace_flags")) {
        (Some(t), Some(s), Some(f)) => Some((t, s, f)),
        (None, None, None) => None,
        other => panic!("partial trace keys on {line}: {other:?}"),
    }
}

/// Parses one line: exactly one JSON object, no duplicate key at any depth.
pub fn parse_strict(line: &str) -> Value {
    let mut de = serde_json::Deserializer::from_str(line);
    NoDuplicates
        .deserialize(&mut de)
        .unwrap_or_else(|e| panic!("invalid or duplicate-key JSON line: {e}\n{line}"));
    de.end()
        .unwrap_or_else(|e| panic!("trailing data: {e}\n{line}"));
    let value: Value = serde_json::from_str(line).unwrap();
    assert!(value.is_object(), "not an object: {line}");
    value
}

struct NoDuplicates;

impl<'de> de::DeserializeSeed<'de> for NoDuplicates {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(NoDuplicates)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicates)?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Runs `f` on a thread and fails if it does not finish in time (a deadlock).
pub fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("did not finish in time: deadlock?")
}
