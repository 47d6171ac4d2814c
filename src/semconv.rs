//! OpenTelemetry semantic-convention values shared by the HTTP integrations
//! (tower middleware, reqwest).

use http::Method;

/// The method as the semantic conventions want it: known methods by name,
/// any other as `_OTHER` (the set of span names must stay bounded).
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_methods_by_name_others_bounded() {
        assert_eq!(method_name(&Method::GET), "GET");
        assert_eq!(method_name(&Method::PATCH), "PATCH");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_name(&custom), "_OTHER");
    }
}
