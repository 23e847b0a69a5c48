//! The `Capability` trait, its import table, and registration through `inventory`.

use std::any::Any;
use std::sync::Arc;

use wasmtime::{Caller, ValType};

use crate::{Error, Import, Plugin, State, Status};

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

/// A capability's settings for one plugin: parsed once, when the plugin loads, from
/// its `[capability."<name>"]` table, and handed to every instance's
/// [`attach`](Capability::attach) (instances, restarts and pool replicas share them).
pub trait Settings: Sized + Send + Sync + 'static {
    /// Parses `table` (absent when the manifest has none), returning every problem;
    /// the host adds the plugin and capability names to each.
    fn parse(table: Option<&toml::Table>, plugin: &Plugin) -> Result<Self, Vec<String>>;
}

/// A settings table decoded into a serde type (its `Default` when the table is absent);
/// the error is the bare problem (`unknown field ...`), for [`Settings::parse`].
pub fn from_table<T: serde::de::DeserializeOwned + Default>(
    table: Option<&toml::Table>,
) -> Result<T, String> {
    match table {
        None => Ok(T::default()),
        Some(t) => t
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string().trim().to_string()),
    }
}

/// No settings: a `[capability."<name>"]` table is an error.
impl Settings for () {
    fn parse(table: Option<&toml::Table>, _: &Plugin) -> Result<(), Vec<String>> {
        match table {
            Some(_) => Err(vec!["takes no settings".to_string()]),
            None => Ok(()),
        }
    }
}

/// A capability: a named set of `pulp` imports with a lifecycle (ARCHITECTURE.md
/// "A capability's life").
///
/// Implement it in a crate of your own and register it with [`register!`](crate::register);
/// linking the crate is all it takes to offer the capability.
pub trait Capability: Send + Sync + 'static {
    /// Its settings for one plugin (`()` when it takes none).
    type Settings: Settings;

    /// The name a manifest declares (`"storage.sqlite"`).
    fn name(&self) -> &'static str;

    /// Other names a manifest may declare for this capability.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Always bound, or bound only when declared (the default: gated).
    fn binding(&self) -> Binding {
        Binding::Gated
    }

    /// Every import this capability provides, each declared once ([`Import::new`]):
    /// the host links them, and derives stubs and diagnostics from them. Called once,
    /// when the capability joins a registry.
    fn imports(&self) -> Vec<Import>;

    /// Parses this plugin's settings once, when it loads, returning every problem:
    /// [`Settings::parse`] of its `[capability."<name>"]` table unless overridden.
    fn configure(&self, plugin: &Plugin) -> Result<Self::Settings, Vec<String>> {
        Self::Settings::parse(plugin.settings(self.name()), plugin)
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

    /// Creates one instance's resources and keeps them in `state`'s [`Slot`](crate::Slot)s.
    fn attach(
        &self,
        _plugin: &Plugin,
        _settings: &Self::Settings,
        _state: &mut State,
    ) -> Result<(), String> {
        Ok(())
    }

    /// Releases what [`Capability::attach`] made; also called after a trap. Values
    /// kept in `state` are dropped with the instance anyway, so implement this only
    /// for work beyond dropping them (flushing, removing containers).
    fn detach(&self, _state: &mut State) {}
}

/// A capability as the host holds it: [`Capability`] with its settings type erased,
/// so that one registry holds them all. Implemented for every `Capability`; only
/// the host calls these methods.
pub trait AnyCapability: Send + Sync + 'static {
    /// [`Capability::name`].
    fn name(&self) -> &'static str;
    /// [`Capability::aliases`].
    fn aliases(&self) -> &'static [&'static str];
    /// [`Capability::binding`].
    fn binding(&self) -> Binding;
    /// [`Capability::imports`].
    fn imports(&self) -> Vec<Import>;
    /// [`Capability::host_section`].
    fn host_section(&self) -> Option<&'static str>;
    /// [`Capability::check_host_section`].
    fn check_host_section(&self, table: &toml::Table) -> Result<(), String>;
    /// [`Capability::configure`], its result type-erased.
    fn configure(&self, plugin: &Plugin) -> Result<AnySettings, Vec<String>>;
    /// [`Capability::attach`] with the settings [`configure`](AnyCapability::configure) made.
    fn attach(
        &self,
        plugin: &Plugin,
        settings: &AnySettings,
        state: &mut State,
    ) -> Result<(), String>;
    /// [`Capability::detach`].
    fn detach(&self, state: &mut State);
}

/// One plugin's parsed settings of one capability, type-erased.
pub type AnySettings = Arc<dyn Any + Send + Sync>;

impl<C: Capability> AnyCapability for C {
    fn name(&self) -> &'static str {
        Capability::name(self)
    }
    fn aliases(&self) -> &'static [&'static str] {
        Capability::aliases(self)
    }
    fn binding(&self) -> Binding {
        Capability::binding(self)
    }
    fn imports(&self) -> Vec<Import> {
        Capability::imports(self)
    }
    fn host_section(&self) -> Option<&'static str> {
        Capability::host_section(self)
    }
    fn check_host_section(&self, table: &toml::Table) -> Result<(), String> {
        Capability::check_host_section(self, table)
    }
    fn configure(&self, plugin: &Plugin) -> Result<AnySettings, Vec<String>> {
        Ok(Arc::new(Capability::configure(self, plugin)?))
    }
    fn attach(
        &self,
        plugin: &Plugin,
        settings: &AnySettings,
        state: &mut State,
    ) -> Result<(), String> {
        let settings = settings.downcast_ref::<C::Settings>().ok_or_else(|| {
            format!(
                "host bug: settings of another type handed to \"{}\"",
                Capability::name(self)
            )
        })?;
        Capability::attach(self, plugin, settings, state)
    }
    fn detach(&self, state: &mut State) {
        Capability::detach(self, state)
    }
}

/// A capability registered with [`register!`](crate::register), collected by `inventory`.
pub struct Registration {
    make: fn() -> Arc<dyn AnyCapability>,
}

impl Registration {
    /// A registration that builds its capability with `make`.
    pub const fn new(make: fn() -> Arc<dyn AnyCapability>) -> Registration {
        Registration { make }
    }

    /// Builds the capability.
    pub fn capability(&self) -> Arc<dyn AnyCapability> {
        (self.make)()
    }
}

inventory::collect!(Registration);

/// Every capability linked into this program, in no particular order.
pub fn registered() -> impl Iterator<Item = Arc<dyn AnyCapability>> {
    inventory::iter::<Registration>
        .into_iter()
        .map(Registration::capability)
}

/// Registers a capability value with the host's registry.
///
/// ```
/// use pulp_ext::wasmtime::Caller;
/// use pulp_ext::{Capability, Import, State, Str};
///
/// struct Greet;
///
/// impl Capability for Greet {
///     type Settings = ();
///     fn name(&self) -> &'static str { "demo.greet" }
///     fn imports(&self) -> Vec<Import> {
///         vec![Import::new("demo_greet", |c: &mut Caller<'_, State>, name: Str| {
///             println!("hello, {}", name.read(c)?);
///             Ok(())
///         })]
///     }
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
/// [`Import::new`] wraps every handler in it.
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
