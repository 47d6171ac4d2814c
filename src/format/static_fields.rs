//! Static fields (service name, version, environment…) rendered once and
//! spliced into every line, and their defaults from OpenTelemetry's
//! resource environment variables.

/// Static fields from `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`, as
/// the OpenTelemetry SDK reads them for its resource, so lines and exported
/// spans name the service alike.
///
/// * `OTEL_RESOURCE_ATTRIBUTES` is `key=value` pairs separated by commas,
///   values percent-encoded (W3C Baggage's encoding); blanks around keys and
///   values are trimmed. If any pair is malformed (no `=`, an empty key, a
///   bad `%` escape, a value that does not decode to UTF-8) the whole
///   variable is discarded, as the specification asks. A key given twice
///   keeps its last value.
/// * `OTEL_SERVICE_NAME`, when set, is `service.name`, whatever the
///   attributes say.
/// * A variable set to an empty (or blank) value counts as unset.
///
/// `lookup` reads a variable (`|name| std::env::var(name).ok()` in
/// production), so this is testable without touching the process
/// environment.
pub(crate) fn from_otel_env(lookup: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let mut fields = set("OTEL_RESOURCE_ATTRIBUTES")
        .and_then(|value| parse_resource_attributes(&value))
        .unwrap_or_default();
    if let Some(service) = set("OTEL_SERVICE_NAME") {
        upsert(&mut fields, "service.name", service.trim().to_owned());
    }
    fields
}

/// Replaces `key`'s value, or appends it.
fn upsert(fields: &mut Vec<(String, String)>, key: &str, value: String) {
    match fields.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => fields.push((key.to_owned(), value)),
    }
}

/// `None` when any pair is malformed.
fn parse_resource_attributes(text: &str) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    for pair in text.split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=')?;
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        upsert(&mut fields, key, percent_decode(value.trim())?);
    }
    Some(fields)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are
/// not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn attributes_are_split_trimmed_and_percent_decoded() {
        let fields = from_otel_env(env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            " service.name = api ,service.version=1.2%2C3,deployment.environment.name=prod%20eu, team=a%3Db",
        )]));
        assert_eq!(
            pairs(&fields),
            [
                ("service.name", "api"),
                ("service.version", "1.2,3"),
                ("deployment.environment.name", "prod eu"),
                ("team", "a=b"),
            ]
        );
    }

    #[test]
    fn the_service_name_variable_wins() {
        let fields = from_otel_env(env(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,k=v"),
            ("OTEL_SERVICE_NAME", "checkout"),
        ]));
        assert_eq!(pairs(&fields), [("service.name", "checkout"), ("k", "v")]);
        let fields = from_otel_env(env(&[("OTEL_SERVICE_NAME", "checkout")]));
        assert_eq!(pairs(&fields), [("service.name", "checkout")]);
    }

    #[test]
    fn a_malformed_pair_discards_the_whole_variable() {
        for bad in ["a=1,b", "a=1,=2", "a=%zz", "a=%4", "a=%ff%fe"] {
            let fields = from_otel_env(env(&[
                ("OTEL_RESOURCE_ATTRIBUTES", bad),
                ("OTEL_SERVICE_NAME", "svc"),
            ]));
            assert_eq!(pairs(&fields), [("service.name", "svc")], "{bad}");
        }
    }

    #[test]
    fn empty_values_are_unset_and_later_duplicates_win() {
        assert!(from_otel_env(env(&[
            ("OTEL_RESOURCE_ATTRIBUTES", " "),
            ("OTEL_SERVICE_NAME", ""),
        ]))
        .is_empty());
        let fields = from_otel_env(env(&[("OTEL_RESOURCE_ATTRIBUTES", "a=1,b=2,a=3,,")]));
        assert_eq!(pairs(&fields), [("a", "3"), ("b", "2")]);
    }
}
