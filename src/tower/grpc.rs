//! Recognising gRPC over HTTP/2 and reading its status, for the semantic
//! conventions of RPC spans (`rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`).

use http::{HeaderMap, Uri};

/// Whether a request or response is gRPC: `content-type` is
/// `application/grpc`, optionally followed by `+format` or `;params`.
///
/// gRPC-Web (`application/grpc-web*`) is not: its status travels inside the
/// body, not in HTTP trailers.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let bytes = value.as_bytes();
    let prefix = b"application/grpc";
    bytes.len() >= prefix.len()
        && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(bytes.get(prefix.len()), None | Some(b'+' | b';'))
}

/// The `/package.Service/Method` path of a gRPC call, kept for the
/// completion line (the request itself moves into the inner service).
#[derive(Debug, Clone)]
pub(crate) struct GrpcCall {
    path: Box<str>,
    /// Where the method starts, when the path has the expected shape.
    method_at: Option<usize>,
}

impl GrpcCall {
    pub(crate) fn from_uri(uri: &Uri) -> Self {
        let path = uri.path();
        Self {
            path: path.into(),
            method_at: split_path(path).map(|(service, _)| service.len() + 2),
        }
    }

    /// `package.Service`, when the path is `/package.Service/Method`.
    pub(crate) fn service(&self) -> Option<&str> {
        self.method_at.map(|at| &self.path[1..at - 1])
    }

    /// `Method`, when the path is `/package.Service/Method`.
    pub(crate) fn method(&self) -> Option<&str> {
        self.method_at.map(|at| &self.path[at..])
    }
}

/// `("package.Service", "Method")` from `/package.Service/Method`: exactly
/// two non-empty segments.
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The `grpc-status` of a header or trailer map; `None` when absent or not
/// a non-negative decimal number.
pub(crate) fn status_of(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The canonical name of a gRPC status code (`NOT_FOUND`), as `error.type`.
pub(crate) fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

/// The codes OpenTelemetry's gRPC conventions count as a *server* error:
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
/// DATA_LOSS. (A client counts every non-zero code as an error.)
pub(crate) fn is_server_error(code: i32) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// The gRPC code a call that ended without `grpc-status` is treated as,
/// as gRPC clients do.
pub(crate) const MISSING_STATUS: i32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn content_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn grpc_is_recognised_by_content_type_only() {
        for yes in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;charset=utf-8",
            "Application/GRPC",
        ] {
            assert!(is_grpc(&content_type(yes)), "{yes}");
        }
        for no in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "application/json",
        ] {
            assert!(!is_grpc(&content_type(no)), "{no}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn service_and_method_come_from_a_two_segment_path() {
        let call = GrpcCall::from_uri(&Uri::from_static("/demo.v1.Greeter/SayHello"));
        assert_eq!(call.service(), Some("demo.v1.Greeter"));
        assert_eq!(call.method(), Some("SayHello"));
        for bad in ["/", "/Greeter", "/Greeter/", "//SayHello", "/a/b/c"] {
            let call = GrpcCall::from_uri(&Uri::from_static(bad));
            assert_eq!((call.service(), call.method()), (None, None), "{bad}");
        }
    }

    #[test]
    fn status_is_a_decimal_number() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_of(&headers), None);
        for (value, expected) in [
            ("0", Some(0)),
            ("13", Some(13)),
            ("-1", None),
            ("", None),
            ("1x", None),
            ("9999999999", None),
        ] {
            headers.insert("grpc-status", HeaderValue::from_static(value));
            assert_eq!(status_of(&headers), expected, "{value:?}");
        }
    }

    #[test]
    fn server_errors_follow_the_conventions() {
        let server_errors: Vec<i32> = (0..=16).filter(|c| is_server_error(*c)).collect();
        assert_eq!(server_errors, [2, 4, 12, 13, 14, 15]);
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "_OTHER");
    }
}
