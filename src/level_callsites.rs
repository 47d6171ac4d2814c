//! Five static event callsites, one per level, for events the crate makes
//! itself (forwarded `log` records, span lifecycle lines): `tracing`'s
//! macros make one callsite per call site, but these events' level is only
//! known at run time.

use tracing_core::callsite::Callsite;
use tracing_core::subscriber::Interest;
use tracing_core::Metadata;

/// A callsite whose events are checked, or formatted, one by one: its
/// cached interest is not used.
pub(crate) struct LevelCallsite(pub(crate) &'static Metadata<'static>);

impl Callsite for LevelCallsite {
    fn set_interest(&self, _interest: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.0
    }
}

/// `level_callsites!(name, target, FIELDS)` defines, in the calling
/// module, `fn callsite(Level) -> &'static LevelCallsite` over five static
/// callsites of event metadata named `name` with `target` and `FIELDS`.
macro_rules! level_callsites {
    ($name:expr, $target:expr, $fields:expr) => {
        /// The static callsite of these events at `level`.
        pub(crate) fn callsite(
            level: tracing_core::Level,
        ) -> &'static $crate::level_callsites::LevelCallsite {
            macro_rules! at {
                ($level:expr) => {{
                    static CALLSITE: $crate::level_callsites::LevelCallsite =
                        $crate::level_callsites::LevelCallsite(&META);
                    static META: tracing_core::Metadata<'static> = tracing_core::Metadata::new(
                        $name,
                        $target,
                        $level,
                        None,
                        None,
                        None,
                        tracing_core::field::FieldSet::new(
                            $fields,
                            tracing_core::identify_callsite!(&CALLSITE),
                        ),
                        tracing_core::metadata::Kind::EVENT,
                    );
                    &CALLSITE
                }};
            }
            match level {
                tracing_core::Level::ERROR => at!(tracing_core::Level::ERROR),
                tracing_core::Level::WARN => at!(tracing_core::Level::WARN),
                tracing_core::Level::INFO => at!(tracing_core::Level::INFO),
                tracing_core::Level::DEBUG => at!(tracing_core::Level::DEBUG),
                _ => at!(tracing_core::Level::TRACE),
            }
        }
    };
}
pub(crate) use level_callsites;
