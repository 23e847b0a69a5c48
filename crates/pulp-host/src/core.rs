//! `core` (always bound): the imports that belong to the host itself.
//!
//! - `last_error(ptr_out, len_out) -> status`: the text of the most recent non-zero
//!   status this plugin instance got (empty when there was none).

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Binding, Capability, Import, OutBytes, State};

pub(crate) struct Core;

impl Capability for Core {
    type Settings = ();

    fn name(&self) -> &'static str {
        "core"
    }

    fn binding(&self) -> Binding {
        Binding::Always
    }

    fn imports(&self) -> Vec<Import> {
        vec![Import::new("last_error", last_error)]
    }
}

fn last_error(c: &mut Caller<'_, State>, out: OutBytes) -> Result<(), pulp_ext::Error> {
    // Reading the error must not replace it with the error of reading it, unless
    // there is a new one (a bad out-pointer, a failing pulp_alloc): `status` sets
    // `last_error` only on failure.
    let text = c.data().last_error().to_string();
    out.write(c, text.as_bytes())
}
