//! `logging` (always bound): `pulp.log(level, msg_ptr, msg_len) -> status`.
//!
//! Each call becomes a `tracing` event with target `pulp::plugin` and a `plugin`
//! field naming the plugin. Levels: 0 trace, 1 debug, 2 info, 3 warn, 4 error;
//! others clamp. The message's bounds are always checked (2 outside memory); its
//! text is decoded only when emitted, invalid UTF-8 as replacement characters.

#![warn(missing_docs)]

use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, State};
use tracing::Level;

struct Logging;

pulp_ext::register!(Logging);

const IMPORTS: &[Import] = &[Import::status("log", 3)];

impl Capability for Logging {
    fn name(&self) -> &'static str {
        "logging"
    }

    fn binding(&self) -> Binding {
        Binding::Always
    }

    fn imports(&self) -> &'static [Import] {
        IMPORTS
    }

    fn link(&self, linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
        linker.func_wrap(
            "pulp",
            "log",
            |mut c: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
                pulp_ext::status(&mut c, |c| {
                    // Bounds are checked whatever the level, so a plugin behaves the same
                    // under every filter; the text is only decoded when it is emitted.
                    let msg = mem::bytes(c, ptr, len, "log message")?;
                    let plugin = c.data().plugin().name();
                    // `tracing` macros need a constant level, hence one arm per level.
                    macro_rules! emit {
                    ($lvl:expr) => {
                        if tracing::enabled!(target: "pulp::plugin", $lvl) {
                            let msg = String::from_utf8_lossy(msg);
                            tracing::event!(target: "pulp::plugin", $lvl, plugin, "{msg}");
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
                })
            },
        )?;
        Ok(())
    }
}
