//! `logging` (always bound): `pulp.log(level, msg_ptr, msg_len) -> status`.
//!
//! Each call becomes a `tracing` event with target `pulp::plugin` and a `plugin`
//! field naming the plugin. Levels: 0 trace, 1 debug, 2 info, 3 warn, 4 error;
//! others clamp. A message below the subscriber's level is not read (status 0
//! whatever its pointer); an emitted one is bounds-checked (2 outside memory),
//! decoded with invalid UTF-8 as replacement characters, and has its newlines and
//! other control characters escaped ([`pulp_ext::log_text`]), so that it stays one
//! line and cannot forge the host's.

#![warn(missing_docs)]

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Binding, Bytes, Capability, Import, State};
use tracing::Level;

/// The `logging` capability, for a registry built by hand:
/// `Registry::empty().always(Arc::new(ext_logging::Logging))`.
pub struct Logging;

pulp_ext::register!(Logging);

impl Capability for Logging {
    type Settings = ();

    fn name(&self) -> &'static str {
        "logging"
    }

    fn binding(&self) -> Binding {
        Binding::Always
    }

    fn imports(&self) -> Vec<Import> {
        vec![Import::new("log", log)]
    }
}

fn log(c: &mut Caller<'_, State>, level: i32, msg: Bytes) -> Result<(), pulp_ext::Error> {
    // `tracing` macros need a constant level, hence one arm per level. A message
    // below the subscriber's level is not read at all, so a filtered log costs
    // little more than a no-op import.
    macro_rules! emit {
        ($lvl:expr) => {
            if tracing::enabled!(target: "pulp::plugin", $lvl) {
                let text = pulp_ext::log_text(msg.read(c)?);
                let plugin = c.data().plugin().name();
                tracing::event!(target: "pulp::plugin", $lvl, plugin, "{text}");
            }
        };
    }
    match level {
        i32::MIN..=0 => emit!(Level::TRACE),
        1 => emit!(Level::DEBUG),
        2 => emit!(Level::INFO),
        3 => emit!(Level::WARN),
        _ => emit!(Level::ERROR),
    }
    Ok(())
}
