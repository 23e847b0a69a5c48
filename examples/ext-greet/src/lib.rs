//! `demo.greet` (gated): `pulp.demo_greet(name_ptr, name_len) -> status` prints
//! `[demo.greet] plugin=<plugin> hello, <name>!` to stdout. 1 for an empty name,
//! 2 for a name outside memory, 3 for one that is not UTF-8.

use pulp_ext::wasmtime::Caller;
use pulp_ext::{Capability, Error, Import, State, Status, Str};

/// The `demo.greet` capability.
pub struct Greet;

pulp_ext::register!(Greet);

impl Capability for Greet {
    type Settings = ();
    fn name(&self) -> &'static str {
        "demo.greet"
    }
    fn imports(&self) -> Vec<Import> {
        vec![Import::new("demo_greet", greet)]
    }
}

fn greet(c: &mut Caller<'_, State>, name: Str) -> Result<(), Error> {
    let name = name.read(c)?;
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
}
