//! The bridge's five static callsites (one per level) and their fields.

use tracing_core::callsite::Identifier;
use tracing_core::{Level, Metadata};

/// The static target of forwarded events. Formatters of this crate write the
/// record's own target instead (it travels in the `log.target` field); other
/// formatters show that field.
pub(crate) const BRIDGE_TARGET: &str = "log";

/// The field holding the record's target, named as `tracing-log` names it.
pub(crate) const TARGET_FIELD: &str = "log.target";

/// Fields of a forwarded event, in this order.
pub(crate) const FIELD_NAMES: &[&str] = &[
    "message",
    TARGET_FIELD,
    "log.module_path",
    "log.file",
    "log.line",
];

crate::level_callsites::level_callsites!("log record", BRIDGE_TARGET, FIELD_NAMES);

/// The static metadata of forwarded events at `level`.
pub(crate) fn metadata(level: Level) -> &'static Metadata<'static> {
    callsite(level).0
}

/// The callsite identifier shared by the static and per-record metadata.
pub(crate) fn identifier(level: Level) -> Identifier {
    tracing_core::identify_callsite!(callsite(level))
}

/// Registers the callsites with every dispatcher, once, so subscribers see
/// them like any other callsite.
pub(crate) fn register_once() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            tracing_core::callsite::register(callsite(level));
        }
    });
}

/// Whether an event was forwarded from `log` by the [`LogBridge`](super::LogBridge).
/// One comparison of addresses, so formatters may ask for every event.
pub(crate) fn is_forwarded(meta: &Metadata<'_>) -> bool {
    std::ptr::eq(
        std::ptr::from_ref(meta).cast::<()>(),
        std::ptr::from_ref(metadata(*meta.level())).cast::<()>(),
    )
}

/// `log`'s level as `tracing`'s.
pub(crate) fn to_tracing_level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::ERROR,
        log::Level::Warn => Level::WARN,
        log::Level::Info => Level::INFO,
        log::Level::Debug => Level::DEBUG,
        log::Level::Trace => Level::TRACE,
    }
}

/// `tracing`'s level filter as `log`'s.
pub(crate) fn to_log_filter(filter: tracing_core::LevelFilter) -> log::LevelFilter {
    match filter.into_level() {
        None => log::LevelFilter::Off,
        Some(Level::ERROR) => log::LevelFilter::Error,
        Some(Level::WARN) => log::LevelFilter::Warn,
        Some(Level::INFO) => log::LevelFilter::Info,
        Some(Level::DEBUG) => log::LevelFilter::Debug,
        Some(_) => log::LevelFilter::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_has_its_own_recognisable_callsite() {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            let meta = metadata(level);
            assert_eq!(*meta.level(), level);
            assert!(is_forwarded(meta));
            assert_eq!(meta.callsite(), identifier(level));
            assert_eq!(meta.fields().iter().count(), FIELD_NAMES.len());
        }
        let other = tracing_core::metadata!(
            name: "x",
            target: BRIDGE_TARGET,
            level: Level::INFO,
            fields: FIELD_NAMES,
            callsite: callsite(Level::INFO),
            kind: tracing_core::metadata::Kind::EVENT,
        );
        assert!(
            !is_forwarded(&other),
            "a copy of the metadata is not the bridge's"
        );
    }

    #[test]
    fn level_filters_map_both_ways() {
        use tracing_core::LevelFilter;
        assert_eq!(to_log_filter(LevelFilter::OFF), log::LevelFilter::Off);
        assert_eq!(to_log_filter(LevelFilter::INFO), log::LevelFilter::Info);
        assert_eq!(to_log_filter(LevelFilter::TRACE), log::LevelFilter::Trace);
        assert_eq!(to_tracing_level(log::Level::Warn), Level::WARN);
    }
}
