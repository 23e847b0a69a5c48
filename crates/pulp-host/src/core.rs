//! `core` (always bound): the imports that belong to the host itself.
//!
//! - `last_error(ptr_out, len_out) -> status`: the text of the most recent non-zero
//!   status this plugin instance got (empty when there was none).

use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, State};

pub(crate) struct Core;

const IMPORTS: &[Import] = &[Import::status("last_error", 2)];

impl Capability for Core {
    fn name(&self) -> &'static str {
        "core"
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
            "last_error",
            |mut c: Caller<'_, State>, out: i32, out_len: i32| {
                let text = c.data().last_error().to_string();
                // Reading the error must not replace it with the error of reading it,
                // unless there is a new one (a bad out-pointer, a failing pulp_alloc).
                pulp_ext::status(&mut c, |c| {
                    mem::write_result(c, text.as_bytes(), out, out_len)
                })
            },
        )?;
        Ok(())
    }
}
