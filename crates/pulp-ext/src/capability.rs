//! The `Capability` trait, its import table, and registration through `inventory`.

use std::sync::Arc;

use wasmtime::{Caller, Linker, ValType};

use crate::{Error, Plugin, State, Status};

/// Whether a capability is bound for every plugin or only for those that declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Bound for every plugin (`logging`, `entropy`).
    Always,
    /// Bound only when the manifest lists it; otherwise its imports get stubs returning 99.
    Gated,
}

/// A wasm value type in an import signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl Ty {
    /// The wasmtime value type.
    pub fn val_type(self) -> ValType {
        match self {
            Ty::I32 => ValType::I32,
            Ty::I64 => ValType::I64,
            Ty::F32 => ValType::F32,
            Ty::F64 => ValType::F64,
        }
    }

    /// The type's name in the text format (`"i32"`).
    pub fn name(self) -> &'static str {
        match self {
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::F32 => "f32",
            Ty::F64 => "f64",
        }
    }
}

/// One import of module `pulp`: its name and wasm signature. A capability states
/// each import once, here; stubs, `pulp caps` and `pulp check` are derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Import {
    /// The import's name in module `pulp`.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// Result types (a single `i32` status for every import of ABI §4).
    pub results: &'static [Ty],
}

impl Import {
    /// An import taking `params` `i32`s and returning an `i32` status, the shape of
    /// every ABI §4 import.
    pub const fn status(name: &'static str, params: usize) -> Import {
        const I32S: [Ty; 8] = [Ty::I32; 8];
        let (params, _) = I32S.split_at(params);
        Import {
            name,
            params,
            results: &[Ty::I32],
        }
    }

    /// The signature in text-format style: `(i32, i32) -> i32`.
    pub fn signature(&self) -> String {
        let list = |t: &[Ty]| t.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
        format!("({}) -> {}", list(self.params), list(self.results))
    }
}

/// A capability: a named set of `pulp` imports with a lifecycle (ARCHITECTURE.md
/// "A capability's life").
///
/// Implement it in a crate of your own and register it with [`register!`](crate::register);
/// linking the crate is all it takes to offer the capability.
pub trait Capability: Send + Sync + 'static {
    /// The name a manifest declares (`"storage.sqlite"`).
    fn name(&self) -> &'static str;

    /// Other names a manifest may declare for this capability.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Always bound, or bound only when declared.
    fn binding(&self) -> Binding;

    /// Every import this capability provides: the one list stubs and diagnostics read.
    fn imports(&self) -> &'static [Import];

    /// Validates this plugin's `[capability."<name>"]` settings before any wasm runs,
    /// returning every problem. The default accepts no settings table.
    fn configure(&self, plugin: &Plugin) -> Result<(), Vec<String>> {
        match plugin.settings(self.name()) {
            Some(_) => Err(vec!["takes no settings".to_string()]),
            None => Ok(()),
        }
    }

    /// The host-level settings section this capability reads from [`Shared`](crate::Shared)
    /// (`"http"` for the listener), if any. Several capabilities may share one.
    fn host_section(&self) -> Option<&'static str> {
        None
    }

    /// Every problem with this capability's host-level section (unknown keys, bad
    /// values), found before any plugin loads ([`host_section`](Capability::host_section)).
    fn check_host_section(&self, _table: &toml::Table) -> Result<(), String> {
        Ok(())
    }

    /// Adds the real imports to a plugin's linker (module `pulp`).
    fn link(&self, linker: &mut Linker<State>) -> wasmtime::Result<()>;

    /// Creates one instance's resources and keeps them in `state`.
    fn attach(&self, _plugin: &Plugin, _state: &mut State) -> Result<(), String> {
        Ok(())
    }

    /// Releases what [`Capability::attach`] made; also called after a trap. Values
    /// kept in `state` are dropped with the instance anyway, so implement this only
    /// for work beyond dropping them (flushing, removing containers).
    fn detach(&self, _state: &mut State) {}
}

/// A capability registered with [`register!`](crate::register), collected by `inventory`.
pub struct Registration {
    make: fn() -> Arc<dyn Capability>,
}

impl Registration {
    /// A registration that builds its capability with `make`.
    pub const fn new(make: fn() -> Arc<dyn Capability>) -> Registration {
        Registration { make }
    }

    /// Builds the capability.
    pub fn capability(&self) -> Arc<dyn Capability> {
        (self.make)()
    }
}

inventory::collect!(Registration);

/// Every capability linked into this program, in no particular order.
pub fn registered() -> impl Iterator<Item = Arc<dyn Capability>> {
    inventory::iter::<Registration>
        .into_iter()
        .map(Registration::capability)
}

/// Registers a capability value with the host's registry.
///
/// ```
/// use pulp_ext::wasmtime::Linker;
/// use pulp_ext::{Binding, Capability, Import, State};
///
/// struct Greet;
///
/// impl Capability for Greet {
///     fn name(&self) -> &'static str { "demo.greet" }
///     fn binding(&self) -> Binding { Binding::Gated }
///     fn imports(&self) -> &'static [Import] { &[] }
///     fn link(&self, _: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> { Ok(()) }
/// }
///
/// pulp_ext::register!(Greet);
/// assert!(pulp_ext::registered().any(|c| c.name() == "demo.greet"));
/// ```
#[macro_export]
macro_rules! register {
    ($capability:expr) => {
        $crate::inventory::submit! {
            $crate::Registration::new(|| ::std::sync::Arc::new($capability))
        }
    };
}

/// Runs a host function's body and turns its outcome into the status the guest
/// gets, recording any failure's message for `last_error`. Traps stay traps.
///
/// ```
/// use pulp_ext::wasmtime::{Caller, Linker};
/// use pulp_ext::State;
///
/// fn link(linker: &mut Linker<State>) -> pulp_ext::wasmtime::Result<()> {
///     linker.func_wrap("pulp", "greet", |mut c: Caller<'_, State>, p: i32, l: i32| {
///         pulp_ext::status(&mut c, |c| {
///             let name = pulp_ext::mem::str(c, p, l, "name")?;
///             println!("hello, {name}");
///             Ok(())
///         })
///     })?;
///     Ok(())
/// }
/// # link(&mut Linker::new(&pulp_ext::wasmtime::Engine::default())).unwrap();
/// ```
pub fn status<'a>(
    caller: &mut Caller<'a, State>,
    body: impl FnOnce(&mut Caller<'a, State>) -> Result<(), Error>,
) -> wasmtime::Result<i32> {
    match body(caller) {
        Ok(()) => Ok(Status::Ok.code()),
        Err(e) => failed(caller.data_mut(), e),
    }
}

#[cold]
#[inline(never)]
fn failed(state: &mut State, e: Error) -> wasmtime::Result<i32> {
    match e {
        Error::Status { status, message } => {
            state.set_last_error(message);
            Ok(status.code())
        }
        Error::Trap(e) => Err(e),
    }
}
