//! `demo.greet` (gated): `pulp.demo_greet(name_ptr, name_len) -> status` prints
//! `[demo.greet] plugin=<plugin> hello, <name>!` to stdout. 1 for an empty name,
//! 2 for a name outside memory, 3 for one that is not UTF-8.

use pulp_ext::wasmtime::{Caller, Linker};
use pulp_ext::{mem, Binding, Capability, Import, State, Status};

/// The `demo.greet` capability.
pub struct Greet;

pulp_ext::register!(Greet);

impl Capability for Greet {
    fn name(&self) -> &'static str {
        "demo.greet"
    }
    fn binding(&self) -> Binding {
        Binding::Gated
    }
    fn imports(&self) -> &'static [Import] {
        const { &[Import::status("demo_greet", 2)] }
    }
    fn link(&self, linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
        linker.func_wrap(
            "pulp",
            "demo_greet",
            |mut c: Caller<'_, State>, p: i32, l: i32| {
                pulp_ext::status(&mut c, |c| {
                    let name = mem::str(c, p, l, "name")?;
                    if name.is_empty() {
                        return Err(Status::Empty.err("demo_greet: the name is empty"));
                    }
                    // Escaped: a name cannot forge lines of the output.
                    let name = pulp_ext::log_text(name.as_bytes());
                    println!(
                        "[demo.greet] plugin={} hello, {name}!",
                        c.data().plugin().name()
                    );
                    Ok(())
                })
            },
        )?;
        Ok(())
    }
}
