//! A span processor, an exporter and a writer that all log through `tracing`
//! must not deadlock (or loop) the pipeline. Global subscriber: own binary.

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use support::{parse_strict, within};
use tracing_correlation::opentelemetry_sdk::error::OTelSdkResult;
use tracing_correlation::opentelemetry_sdk::trace::{
    SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use tracing_correlation::TraceIds;

#[derive(Debug)]
struct LoggingProcessor;

impl SpanProcessor for LoggingProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {
        // Runs while tracing-opentelemetry holds the span's lock.
        tracing::info!(target: "processor", "span starting");
    }
    fn on_end(&self, _span: SpanData) {
        tracing::info!(target: "processor", "span ended");
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct LoggingExporter(Arc<AtomicUsize>);

impl SpanExporter for LoggingExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        tracing::warn!(target: "exporter", spans = batch.len(), "exporting");
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// Logs on every write: without a bound this would recurse forever.
#[derive(Clone, Default)]
struct LoggingWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LoggingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        tracing::debug!(target: "writer", bytes = buf.len(), "writing");
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LoggingWriter {
    type Writer = LoggingWriter;
    fn make_writer(&'a self) -> LoggingWriter {
        self.clone()
    }
}

#[test]
fn logging_from_processor_exporter_and_writer_never_hangs() {
    let out = LoggingWriter::default();
    let exported = Arc::new(AtomicUsize::new(0));
    let (text, ids) = within(30, {
        let out = out.clone();
        let exported = exported.clone();
        move || {
            let provider = SdkTracerProvider::builder()
                .with_span_processor(LoggingProcessor)
                .with_simple_exporter(LoggingExporter(exported))
                .build();
            let guard = tracing_correlation::builder()
                .writer(out.clone())
                .tracer_provider(provider)
                .filter("trace")
                .panic_hook(false)
                .try_init()
                .unwrap();
            let mut ids = Vec::new();
            for i in 0..20 {
                let span = tracing::info_span!("work", i);
                let _e = span.enter();
                tracing::info!(i, "inside");
                ids.push(TraceIds::current().unwrap());
                tracing::info_span!("child").in_scope(|| tracing::info!("in child"));
            }
            drop(guard);
            (
                String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
                ids,
            )
        }
    });
    assert_eq!(
        exported.load(Ordering::SeqCst),
        40,
        "every span was exported"
    );
    let lines: Vec<_> = text.lines().map(parse_strict).collect();
    let inside: Vec<_> = lines.iter().filter(|l| l["message"] == "inside").collect();
    assert_eq!(inside.len(), 20);
    for (line, ids) in inside.iter().zip(&ids) {
        assert_eq!(line["trace_id"], ids.trace_id_hex().as_str());
        assert_eq!(line["span_id"], ids.span_id_hex().as_str());
    }
    for target in ["processor", "exporter"] {
        assert!(
            lines.iter().any(|l| l["target"] == target),
            "the {target}'s own events were logged"
        );
    }
    // The writer's own events are dropped (and counted), never written:
    // written, they would recurse or wait on the writer itself.
    let writing = lines.iter().filter(|l| l["target"] == "writer").count();
    assert_eq!(writing, 0, "{text}");
}
