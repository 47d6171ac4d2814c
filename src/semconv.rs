//! OpenTelemetry semantic-convention values shared by the HTTP integrations
//! (tower middleware, reqwest).

use http::Method;
#[cfg(feature = "tower")]
use http::{HeaderMap, Uri};

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

/// `url.full` for a client request: `None` unless the URI is absolute.
/// User info becomes `REDACTED:REDACTED` and every query value `REDACTED`
/// (names kept): the conventions ask for the first and for the values of
/// known signature keys; any value may be a token, so all are hidden.
#[cfg(feature = "tower")]
pub(crate) fn redacted_full_url(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    let mut full = String::with_capacity(scheme.len() + authority.len() + 24);
    full.push_str(scheme);
    full.push_str("://");
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            full.push_str("REDACTED:REDACTED@");
            full.push_str(host);
        }
        None => full.push_str(authority),
    }
    full.push_str(uri.path());
    if let Some(query) = uri.query().filter(|query| !query.is_empty()) {
        full.push('?');
        push_redacted_query(query, &mut full);
    }
    Some(full)
}

/// Appends `query` with each value replaced by `REDACTED`, names kept.
pub(crate) fn push_redacted_query(query: &str, out: &mut String) {
    for (i, item) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match item.split_once('=') {
            Some((name, _)) => {
                out.push_str(name);
                out.push_str("=REDACTED");
            }
            None if item.is_empty() => {}
            None => out.push_str("REDACTED"),
        }
    }
}

/// The scheme's default port, for `server.port` when none is written.
#[cfg(feature = "tower")]
pub(crate) fn default_port(scheme: Option<&str>) -> Option<u16> {
    match scheme {
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => Some(80),
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => Some(443),
        _ => None,
    }
}

/// `server.address` and the port written with it, as the server saw them:
/// the request target's authority (HTTP/2 `:authority`, absolute form), else
/// the `Host` header.
#[cfg(feature = "tower")]
pub(crate) fn server_authority<'r>(
    uri: &'r Uri,
    headers: &'r HeaderMap,
) -> Option<(&'r str, Option<u16>)> {
    if let Some(authority) = uri.authority() {
        return Some((authority.host(), authority.port_u16()));
    }
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    // The parsed authority is dropped here: find the host inside `host`.
    let name = authority.host();
    let start = host.find(name)?;
    Some((&host[start..start + name.len()], authority.port_u16()))
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

    #[test]
    #[cfg(feature = "tower")]
    fn full_url_hides_user_info_and_query_values() {
        let uri: Uri = "https://alice:s3cret@api.example:8443/v1/items?token=abc&page=2&flag"
            .parse()
            .unwrap();
        assert_eq!(
            redacted_full_url(&uri).as_deref(),
            Some("https://REDACTED:REDACTED@api.example:8443/v1/items?token=REDACTED&page=REDACTED&REDACTED")
        );
        let plain: Uri = "http://api.example/x".parse().unwrap();
        assert_eq!(
            redacted_full_url(&plain).as_deref(),
            Some("http://api.example/x")
        );
        let relative: Uri = "/x?y=1".parse().unwrap();
        assert_eq!(redacted_full_url(&relative), None);
    }

    #[test]
    #[cfg(feature = "tower")]
    fn server_authority_from_the_target_or_the_host_header() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "shop.example:8080".parse().unwrap());
        let origin_form: Uri = "/cart".parse().unwrap();
        assert_eq!(
            server_authority(&origin_form, &headers),
            Some(("shop.example", Some(8080)))
        );
        let absolute: Uri = "http://api.example/cart".parse().unwrap();
        assert_eq!(
            server_authority(&absolute, &headers),
            Some(("api.example", None))
        );
        assert_eq!(server_authority(&origin_form, &HeaderMap::new()), None);
    }
}
