#![allow(unreachable_pub, dead_code, clippy::pedantic)]
//! A real OTLP receiver for tests: gRPC (tonic `TraceService` and
//! `LogsService`) and HTTP/protobuf (`POST /v1/traces`, `POST /v1/logs`),
//! both on 127.0.0.1 with OS-chosen ports, both decoding the export requests
//! into one shared [`SpanStore`]. Every request's encoding is recorded
//! (`Content-Encoding` over HTTP, `grpc-encoding` over gRPC); a receiver
//! started with [`OtlpReceiver::start_requiring_gzip`] refuses (and does not
//! store) uncompressed requests, as a collector configured for it would.
//!
//! Include it with `#[path = "support/otlp_receiver.rs"] mod otlp_receiver;`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use tonic::codec::CompressionEncoding;

/// Which transport delivered a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// An attribute value with its OTLP type.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps, bytes: their debug form.
    Other(String),
}

impl Attr {
    fn from_proto(value: Option<Value>) -> Self {
        match value {
            Some(Value::StringValue(s)) => Self::Str(s),
            Some(Value::IntValue(i)) => Self::Int(i),
            Some(Value::DoubleValue(d)) => Self::Double(d),
            Some(Value::BoolValue(b)) => Self::Bool(b),
            Some(other) => Self::Other(format!("{other:?}")),
            None => Self::Other(String::new()),
        }
    }

    pub fn str(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

fn attributes(key_values: Vec<KeyValue>) -> BTreeMap<String, Attr> {
    key_values
        .into_iter()
        .map(|kv| (kv.key, Attr::from_proto(kv.value.and_then(|v| v.value))))
        .collect()
}

/// One span as the collector saw it; ids are lowercase hex, the parent is
/// empty for a root.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    pub transport: Transport,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub resource: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, Attr>,
    pub scope_name: String,
    pub scope_version: String,
}

/// One log record as the collector saw it; ids are lowercase hex (empty
/// when the record has none), `flags` the W3C trace flags.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedLog {
    pub transport: Transport,
    pub trace_id: String,
    pub span_id: String,
    pub flags: u32,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: String,
    pub body: Option<Attr>,
    pub event_name: String,
    pub attributes: BTreeMap<String, Attr>,
    pub resource: BTreeMap<String, String>,
    pub scope_name: String,
    pub scope_version: String,
}

/// One export request: which transport, which signal (`traces`, `logs`),
/// its encoding (`""` when uncompressed) and whether it was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    pub transport: Transport,
    pub signal: &'static str,
    pub encoding: String,
    pub accepted: bool,
}

/// Spans, logs and requests received so far, shared by both servers.
#[derive(Debug, Default)]
pub struct SpanStore {
    spans: Mutex<Vec<ReceivedSpan>>,
    logs: Mutex<Vec<ReceivedLog>>,
    requests: Mutex<Vec<SeenRequest>>,
    changed: Condvar,
    require_gzip: bool,
}

impl SpanStore {
    /// Records a request and says whether it may be stored.
    fn admit(&self, transport: Transport, signal: &'static str, encoding: &str) -> bool {
        let accepted = !self.require_gzip || encoding.eq_ignore_ascii_case("gzip");
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SeenRequest {
                transport,
                signal,
                encoding: encoding.to_owned(),
                accepted,
            });
        self.changed.notify_all();
        accepted
    }

    /// Every export request so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn push_logs(&self, transport: Transport, request: ExportLogsServiceRequest) {
        let mut received = Vec::new();
        for resource_logs in request.resource_logs {
            let resource: BTreeMap<String, String> = resource_logs
                .resource
                .map(|resource| {
                    resource
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, any_value_to_string(kv.value.and_then(|v| v.value))))
                        .collect()
                })
                .unwrap_or_default();
            for scope_logs in resource_logs.scope_logs {
                let (scope_name, scope_version) = scope_logs
                    .scope
                    .map(|scope| (scope.name, scope.version))
                    .unwrap_or_default();
                for record in scope_logs.log_records {
                    received.push(ReceivedLog {
                        transport,
                        trace_id: hex(&record.trace_id),
                        span_id: hex(&record.span_id),
                        flags: record.flags,
                        time_unix_nano: record.time_unix_nano,
                        observed_time_unix_nano: record.observed_time_unix_nano,
                        severity_number: record.severity_number,
                        severity_text: record.severity_text,
                        body: record.body.map(|body| Attr::from_proto(body.value)),
                        event_name: record.event_name,
                        attributes: attributes(record.attributes),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        scope_version: scope_version.clone(),
                    });
                }
            }
        }
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.extend(received);
        self.changed.notify_all();
    }

    /// Waits until at least `n` log records arrived or `timeout` elapsed,
    /// and returns all received so far.
    pub fn wait_for_logs(&self, n: usize, timeout: Duration) -> Vec<ReceivedLog> {
        self.wait_until(&self.logs, n, timeout)
    }

    /// All log records received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn push_request(&self, transport: Transport, request: ExportTraceServiceRequest) {
        let mut received = Vec::new();
        for resource_spans in request.resource_spans {
            let resource: BTreeMap<String, String> = resource_spans
                .resource
                .map(|resource| {
                    resource
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, any_value_to_string(kv.value.and_then(|v| v.value))))
                        .collect()
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                let (scope_name, scope_version) = scope_spans
                    .scope
                    .map(|scope| (scope.name, scope.version))
                    .unwrap_or_default();
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        transport,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        kind: span.kind,
                        resource: resource.clone(),
                        attributes: attributes(span.attributes),
                        scope_name: scope_name.clone(),
                        scope_version: scope_version.clone(),
                    });
                }
            }
        }
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        spans.extend(received);
        self.changed.notify_all();
    }

    /// Waits until at least `n` spans arrived or `timeout` elapsed, and returns
    /// all spans received so far.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.wait_until(&self.spans, n, timeout)
    }

    /// Waits until `received` holds at least `n` items or `timeout` elapsed,
    /// and returns them all.
    fn wait_until<T: Clone>(
        &self,
        received: &Mutex<Vec<T>>,
        n: usize,
        timeout: Duration,
    ) -> Vec<T> {
        let deadline = Instant::now() + timeout;
        let mut items = received.lock().unwrap_or_else(|e| e.into_inner());
        while items.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            items = self
                .changed
                .wait_timeout(items, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        items.clone()
    }

    /// All spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Both servers, running until the test process exits.
#[derive(Debug)]
pub struct OtlpReceiver {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    store: Arc<SpanStore>,
}

impl OtlpReceiver {
    /// Starts both servers; they accept connections as soon as this returns.
    pub fn start() -> Self {
        Self::start_with(false, None, None)
    }

    /// Both servers, refusing requests that are not gzip-compressed.
    pub fn start_requiring_gzip() -> Self {
        Self::start_with(true, None, None)
    }

    /// Both servers, on the given ports (a port a test found closed).
    pub fn start_on(grpc: SocketAddr, http: SocketAddr) -> Self {
        Self::start_with(false, Some(grpc), Some(http))
    }

    fn start_with(require_gzip: bool, grpc: Option<SocketAddr>, http: Option<SocketAddr>) -> Self {
        let store = Arc::new(SpanStore {
            require_gzip,
            ..SpanStore::default()
        });
        let grpc_addr = start_grpc(Arc::clone(&store), grpc);
        let http_addr = start_http(Arc::clone(&store), http);
        Self {
            grpc_addr,
            http_addr,
            store,
        }
    }

    pub fn wait_for_logs(&self, n: usize, timeout: Duration) -> Vec<ReceivedLog> {
        self.store.wait_for_logs(n, timeout)
    }

    /// `http://127.0.0.1:PORT` of the gRPC server.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:PORT` of the HTTP server (without `/v1/traces`).
    pub fn http_base(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn store(&self) -> &SpanStore {
        &self.store
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.store.wait_for(n, timeout)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn any_value_to_string(value: Option<Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s,
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

struct GrpcTraceService {
    store: Arc<SpanStore>,
}

fn grpc_encoding(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("grpc-encoding")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn refused() -> tonic::Status {
    tonic::Status::invalid_argument("this receiver accepts gzip-compressed requests only")
}

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let encoding = grpc_encoding(request.metadata());
        if !self.store.admit(Transport::Grpc, "traces", &encoding) {
            return Err(refused());
        }
        self.store
            .push_request(Transport::Grpc, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

struct GrpcLogsService {
    store: Arc<SpanStore>,
}

#[tonic::async_trait]
impl LogsService for GrpcLogsService {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let encoding = grpc_encoding(request.metadata());
        if !self.store.admit(Transport::Grpc, "logs", &encoding) {
            return Err(refused());
        }
        self.store.push_logs(Transport::Grpc, request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

fn start_grpc(store: Arc<SpanStore>, at: Option<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind(at.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
        .expect("bind the gRPC receiver");
    let addr = listener.local_addr().expect("gRPC receiver address");
    listener
        .set_nonblocking(true)
        .expect("non-blocking gRPC listener");
    std::thread::Builder::new()
        .name("otlp-receiver-grpc".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("tokio gRPC listener");
                tonic::transport::Server::builder()
                    .add_service(
                        TraceServiceServer::new(GrpcTraceService {
                            store: Arc::clone(&store),
                        })
                        .accept_compressed(CompressionEncoding::Gzip),
                    )
                    .add_service(
                        LogsServiceServer::new(GrpcLogsService { store })
                            .accept_compressed(CompressionEncoding::Gzip),
                    )
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                    .await
                    .expect("gRPC receiver");
            });
        })
        .expect("spawn the gRPC receiver");
    addr
}

fn start_http(store: Arc<SpanStore>, at: Option<SocketAddr>) -> SocketAddr {
    let listener = TcpListener::bind(at.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
        .expect("bind the HTTP receiver");
    let addr = listener.local_addr().expect("HTTP receiver address");
    std::thread::Builder::new()
        .name("otlp-receiver-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    // A broken connection only ends that connection.
                    let _ = serve_http_connection(stream, &store);
                });
            }
        })
        .expect("spawn the HTTP receiver");
    addr
}

/// Minimal HTTP/1.1: keep-alive, `Content-Length` or chunked bodies.
fn serve_http_connection(stream: TcpStream, store: &SpanStore) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();

        let mut content_length = 0usize;
        let mut chunked = false;
        let mut content_type = String::new();
        let mut content_encoding = String::new();
        let mut close = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                    "content-type" => content_type = value.to_ascii_lowercase(),
                    "content-encoding" => content_encoding = value.to_ascii_lowercase(),
                    "connection" => close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }

        let body = if chunked {
            read_chunked(&mut reader)?
        } else {
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            body
        };

        let signal = match path.as_str() {
            "/v1/traces" => Some("traces"),
            "/v1/logs" => Some("logs"),
            _ => None,
        };
        let status = match signal {
            Some(signal) if method == "POST" => {
                if content_type != "application/x-protobuf"
                    || !store.admit(Transport::Http, signal, &content_encoding)
                {
                    "415 Unsupported Media Type"
                } else {
                    let body = match content_encoding.as_str() {
                        "" | "identity" => Some(body),
                        "gzip" => {
                            let mut plain = Vec::new();
                            flate2::read::GzDecoder::new(body.as_slice())
                                .read_to_end(&mut plain)
                                .ok()
                                .map(|_| plain)
                        }
                        _ => None,
                    };
                    match (signal, body) {
                        (_, None) => "400 Bad Request",
                        ("traces", Some(body)) => {
                            match ExportTraceServiceRequest::decode(body.as_slice()) {
                                Ok(request) => {
                                    store.push_request(Transport::Http, request);
                                    "200 OK"
                                }
                                Err(_) => "400 Bad Request",
                            }
                        }
                        (_, Some(body)) => {
                            match ExportLogsServiceRequest::decode(body.as_slice()) {
                                Ok(request) => {
                                    store.push_logs(Transport::Http, request);
                                    "200 OK"
                                }
                                Err(_) => "400 Bad Request",
                            }
                        }
                    }
                }
            }
            _ => "404 Not Found",
        };
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        )?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}
