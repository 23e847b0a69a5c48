//! Imports declared once: a name and a typed Rust function make both the import
//! table row (for stubs, `pulp check`, `pulp caps`) and the linked host function.
//!
//! A handler is `fn(&mut Caller<'_, State>, A, B, ...) -> Result<(), Error>` where each
//! argument is an [`Arg`]: `i32` (one wasm parameter), [`Str`], [`Bytes`], [`BytesMut`],
//! [`Msgpack<T>`] (a `(ptr, len)` pair each) or [`Out<T>`], [`OutBytes`] (the two
//! out-pointers of a result). The wasm signature is the arguments' parameters in
//! order, returning the `i32` status; the handler's `Err` becomes that status and
//! `last_error` ([`status`](crate::status)). Arguments are read only when the handler
//! asks, so it decides the order of its checks and skips work it does not need.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasmtime::{Caller, Linker};

use crate::tape::ArgKind;
use crate::{mem, Error, State, Ty};

/// The most wasm parameters an import may take.
const MAX_PARAMS: usize = 8;
static I32S: [Ty; MAX_PARAMS] = [Ty::I32; MAX_PARAMS];

type LinkFn = dyn Fn(&mut Linker<State>) -> wasmtime::Result<()> + Send + Sync;

/// One import of module `pulp`: its name, its wasm signature and its host function.
///
/// ```
/// use pulp_ext::wasmtime::Caller;
/// use pulp_ext::{Import, State, Status, Str};
///
/// fn greet(c: &mut Caller<'_, State>, name: Str) -> Result<(), pulp_ext::Error> {
///     let name = name.read(c)?;
///     if name.is_empty() {
///         return Err(Status::Empty.err("the name is empty"));
///     }
///     println!("hello, {name}");
///     Ok(())
/// }
///
/// let import = Import::new("greet", greet);
/// assert_eq!(import.signature(), "(i32, i32) -> i32");
/// ```
#[derive(Clone)]
pub struct Import {
    /// The import's name in module `pulp`.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// Result types (the `i32` status).
    pub results: &'static [Ty],
    link: Arc<LinkFn>,
}

impl fmt::Debug for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pulp.{}{}", self.name, self.signature())
    }
}

impl Import {
    /// The import `pulp.<name>`, served by `handler`; its signature follows from the
    /// handler's argument types.
    pub fn new<Args, H: Handler<Args>>(name: &'static str, handler: H) -> Import {
        const {
            assert!(
                H::ARITY <= MAX_PARAMS,
                "an import takes at most 8 wasm parameters"
            )
        };
        let handler = Arc::new(handler);
        Import {
            name,
            params: &I32S[..H::ARITY],
            results: &[Ty::I32],
            link: Arc::new(move |linker| link(linker, name, handler.clone())),
        }
    }

    /// The signature in text-format style: `(i32, i32) -> i32`.
    pub fn signature(&self) -> String {
        let list = |t: &[Ty]| t.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
        format!("({}) -> {}", list(self.params), list(self.results))
    }

    /// Adds the host function to `linker` under module `pulp`.
    pub fn link(&self, linker: &mut Linker<State>) -> wasmtime::Result<()> {
        (self.link)(linker)
    }
}

/// One wasm function shape per parameter count; each gathers its `i32`s and hands
/// them to the handler, so no import writes this preamble itself.
fn link<Args, H: Handler<Args>>(
    linker: &mut Linker<State>,
    name: &'static str,
    h: Arc<H>,
) -> wasmtime::Result<()> {
    macro_rules! wrap {
        ($($p:ident)*) => {{
            linker.func_wrap("pulp", name, move |mut c: Caller<'_, State>, $($p: i32),*| {
                let raw = [$($p),*];
                if c.data().tape_ref().is_some() {
                    return crate::tape::around(&mut c, name, H::KINDS, &raw, |c| h.call(c, &raw, name));
                }
                let code = crate::status(&mut c, |c| h.call(c, &raw, name))?;
                if crate::metrics::enabled() {
                    c.data_mut().count_import(name, code);
                }
                Ok(code)
            })?;
        }};
    }
    match H::ARITY {
        0 => wrap!(),
        1 => wrap!(a),
        2 => wrap!(a b),
        3 => wrap!(a b d),
        4 => wrap!(a b d e),
        5 => wrap!(a b d e f),
        6 => wrap!(a b d e f g),
        7 => wrap!(a b d e f g i),
        _ => wrap!(a b d e f g i j),
    }
    Ok(())
}

/// A host function with typed arguments `Args` (a tuple of [`Arg`]s); implemented
/// for every `Fn(&mut Caller<'_, State>, A, ...) -> Result<(), Error>` of up to five arguments.
pub trait Handler<Args>: Send + Sync + 'static {
    /// How many wasm parameters the arguments take together.
    const ARITY: usize;
    /// What each argument is, for record and replay.
    const KINDS: &'static [ArgKind];
    /// Builds the arguments from the raw parameters of import `import` and runs.
    fn call(
        &self,
        c: &mut Caller<'_, State>,
        raw: &[i32],
        import: &'static str,
    ) -> Result<(), Error>;
}

macro_rules! handler {
    ($($a:ident)*) => {
        impl<F, $($a: Arg),*> Handler<($($a,)*)> for F
        where
            F: Fn(&mut Caller<'_, State>, $($a),*) -> Result<(), Error> + Send + Sync + 'static,
        {
            const ARITY: usize = 0 $(+ $a::ARITY)*;
            const KINDS: &'static [ArgKind] = &[$($a::KIND),*];

            #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
            #[inline]
            fn call(&self, c: &mut Caller<'_, State>, raw: &[i32], import: &'static str) -> Result<(), Error> {
                let mut at = 0;
                $(
                    let $a = $a::from_raw(&raw[at..at + $a::ARITY], import);
                    at += $a::ARITY;
                )*
                self(c, $($a),*)
            }
        }
    };
}

handler!();
handler!(A);
handler!(A B);
handler!(A B C);
handler!(A B C D);
handler!(A B C D E);

/// An import argument: how many wasm `i32` parameters it takes and how it is made
/// from them. Reading guest memory happens later, when the handler asks.
pub trait Arg: Sized {
    /// The number of wasm `i32` parameters.
    const ARITY: usize;
    /// What it is, for record and replay.
    const KIND: ArgKind;
    /// The argument from its parameters (`raw.len() == ARITY`) of import `import`.
    fn from_raw(raw: &[i32], import: &'static str) -> Self;
}

impl Arg for i32 {
    const ARITY: usize = 1;
    const KIND: ArgKind = ArgKind::Int;
    fn from_raw(raw: &[i32], _: &'static str) -> i32 {
        raw[0]
    }
}

/// What an argument is called in error messages: `"fs_read text"`.
struct Label(&'static str, &'static str);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

macro_rules! pair {
    ($(#[$doc:meta])* $name:ident $(<$t:ident>)?, $kind:ident) => {
        $(#[$doc])*
        pub struct $name $(<$t>)? {
            ptr: i32,
            len: i32,
            #[allow(dead_code)] // the out-pointers name themselves in errors
            import: &'static str,
            $(_t: PhantomData<fn() -> $t>,)?
        }

        impl $(<$t>)? Arg for $name $(<$t>)? {
            const ARITY: usize = 2;
            const KIND: ArgKind = ArgKind::$kind;
            fn from_raw(raw: &[i32], import: &'static str) -> Self {
                $name { ptr: raw[0], len: raw[1], import, $(_t: PhantomData::<fn() -> $t>,)? }
            }
        }

        impl $(<$t>)? $name $(<$t>)? {
            /// The raw `(ptr, len)` pair.
            pub fn raw(&self) -> (i32, i32) {
                (self.ptr, self.len)
            }
        }
    };
}

pair! {
    /// UTF-8 text the guest passes as `(ptr, len)`.
    Str, Text
}
pair! {
    /// Bytes the guest passes as `(ptr, len)`.
    Bytes, Bytes
}
pair! {
    /// A guest buffer `(ptr, len)` the host fills.
    BytesMut, Buffer
}
pair! {
    /// A msgpack map the guest passes as `(ptr, len)`, decoded into `T`.
    Msgpack<T>, Msgpack
}
pair! {
    /// A result returned through two out-pointers `(ptr_out, len_out)`, encoded as msgpack.
    Out<T>, Out
}
pair! {
    /// Raw result bytes returned through two out-pointers `(ptr_out, len_out)`.
    OutBytes, Out
}

impl Str {
    /// The text: 2 outside memory, 11 over the message limit, 3 when not UTF-8.
    pub fn read<'c>(&self, c: &'c Caller<'_, State>) -> Result<&'c str, Error> {
        mem::str(c, self.ptr, self.len, &Label(self.import, "text"))
    }
}

impl Bytes {
    /// The bytes: 2 outside memory, 11 over the message limit.
    pub fn read<'c>(&self, c: &'c Caller<'_, State>) -> Result<&'c [u8], Error> {
        mem::bytes(c, self.ptr, self.len, &Label(self.import, "data"))
    }
}

impl BytesMut {
    /// The buffer, for writing: 2 outside memory.
    pub fn get<'c>(&self, c: &'c mut Caller<'_, State>) -> Result<&'c mut [u8], Error> {
        mem::bytes_mut(c, self.ptr, self.len, &Label(self.import, "buffer"))
    }
}

impl<T: DeserializeOwned> Msgpack<T> {
    /// The decoded request: 2 outside memory, 11 over the limit, 1 empty, 3 not a
    /// map of `T`'s fields.
    pub fn read(&self, c: &Caller<'_, State>) -> Result<T, Error> {
        mem::decode(c, self.ptr, self.len, &Label(self.import, "request"))
    }
}

impl<T: Serialize> Out<T> {
    /// Encodes `value` and hands it to the guest (`pulp_alloc`, then the out-pointers).
    pub fn write(&self, c: &mut Caller<'_, State>, value: &T) -> Result<(), Error> {
        mem::write_msgpack(c, value, self.ptr, self.len)
    }
}

impl OutBytes {
    /// Hands `data` to the guest (`pulp_alloc`, then the out-pointers).
    pub fn write(&self, c: &mut Caller<'_, State>, data: &[u8]) -> Result<(), Error> {
        mem::write_result(c, data, self.ptr, self.len)
    }
}
