#![allow(unreachable_pub, dead_code, clippy::pedantic)]
//! A real OTLP trace receiver for tests: gRPC (tonic `TraceService`) and
//! HTTP/protobuf (`POST /v1/traces`), both on 127.0.0.1 with OS-chosen ports,
//! both decoding `ExportTraceServiceRequest` into one shared [`SpanStore`].
//!
//! Include it with `#[path = "support/otlp_receiver.rs"] mod otlp_receiver;`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// Which transport delivered a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// One span as the collector saw it; ids are lowercase hex, the parent is
/// empty for a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    pub transport: Transport,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub resource: BTreeMap<String, String>,
}

/// Spans received so far, shared by both servers.
#[derive(Debug, Default)]
pub struct SpanStore {
    spans: Mutex<Vec<ReceivedSpan>>,
    changed: Condvar,
}

impl SpanStore {
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
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        transport,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        resource: resource.clone(),
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
        let deadline = Instant::now() + timeout;
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        while spans.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            spans = self
                .changed
                .wait_timeout(spans, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        spans.clone()
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
        let store = Arc::new(SpanStore::default());
        let grpc_addr = start_grpc(Arc::clone(&store));
        let http_addr = start_http(Arc::clone(&store));
        Self {
            grpc_addr,
            http_addr,
            store,
        }
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

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store
            .push_request(Transport::Grpc, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn start_grpc(store: Arc<SpanStore>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the gRPC receiver");
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
                    .serve_with_incoming(
                        TraceServiceServer::new(GrpcTraceService { store }),
                        tonic::transport::server::TcpIncoming::from(listener),
                    )
                    .await
                    .expect("gRPC receiver");
            });
        })
        .expect("spawn the gRPC receiver");
    addr
}

fn start_http(store: Arc<SpanStore>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP receiver");
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

        let status = if method != "POST" || path != "/v1/traces" {
            "404 Not Found"
        } else if content_type != "application/x-protobuf" {
            "415 Unsupported Media Type"
        } else {
            match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(request) => {
                    store.push_request(Transport::Http, request);
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            }
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
