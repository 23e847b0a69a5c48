#![doc = include_str!("../README.md")]

pub mod calls;
pub mod docker;
pub mod entropy;
mod event;
pub mod fs;
pub mod http;
pub mod log;
#[doc(hidden)]
pub mod mem;
pub mod msgpack;
pub mod sqlite;
pub mod sse;
mod status;
#[doc(hidden)]
pub mod sys;
pub mod ws;

pub use event::{Envelope, Event, WsClose, WsFrame, WsOpen};
pub use status::{last_error, Error, Result, Status};

/// A plugin: made from its config by `pulp_init`, stepped once per event or idle
/// tick, shut down at the end. Exported with [`plugin!`].
pub trait Plugin: Sized + 'static {
    /// The manifest's `[config]`, decoded with serde (integers arrive as int64 and
    /// fit any integer field they are in range of). An absent `[config]` is
    /// `Default::default()`.
    type Config: serde::de::DeserializeOwned + Default;

    /// Makes the plugin (register routes, open tables ...). An error fails
    /// `pulp_init` with its status, after logging it.
    fn init(config: Self::Config) -> Result<Self>;

    /// One event, or an idle tick ([`Event::Tick`]). An error is logged and the
    /// plugin keeps running; an error while handling [`Event::Http`] also answers
    /// that request 500 if it is still open.
    fn step(&mut self, envelope: &Envelope, event: Event) -> Result<()>;

    /// The host is stopping the plugin.
    fn shutdown(&mut self) -> Result<()> {
        Ok(())
    }

    /// Another plugin's [`calls::call`] of function `name` with `args`: the answer,
    /// or an error whose status and message the caller gets. By default the plugin
    /// serves no calls ([`Status::NotFound`]).
    fn on_call(&mut self, name: &str, args: &[u8]) -> Result<Vec<u8>> {
        let _ = args;
        Err(Error::new(
            Status::NotFound,
            format!("this plugin serves no calls (asked for {name:?})"),
        ))
    }
}

/// Exports `$plugin` (a [`Plugin`]) as this module's plugin: `pulp_init`,
/// `pulp_step`, `pulp_shutdown`, `pulp_alloc` and `pulp_free`.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        #[no_mangle]
        pub extern "C" fn pulp_alloc(size: i32) -> i32 {
            $crate::mem::alloc(size)
        }

        #[no_mangle]
        pub extern "C" fn pulp_free(ptr: i32, size: i32) {
            $crate::mem::free(ptr, size)
        }

        #[no_mangle]
        pub extern "C" fn pulp_init(ptr: i32, len: i32) -> i32 {
            $crate::__run::init::<$plugin>(ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn pulp_step(ptr: i32, len: i32) -> i32 {
            $crate::__run::step::<$plugin>(ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn pulp_shutdown() -> i32 {
            $crate::__run::shutdown::<$plugin>()
        }

        #[no_mangle]
        pub extern "C" fn pulp_on_call(
            name: i32,
            name_len: i32,
            args: i32,
            args_len: i32,
            out: i32,
            out_len: i32,
        ) -> i32 {
            $crate::__run::on_call::<$plugin>(name, name_len, args, args_len, out, out_len)
        }
    };
}

#[doc(hidden)]
pub mod __run {
    //! What [`plugin!`]'s exports call: the one plugin value of this instance.
    use std::any::Any;
    use std::cell::RefCell;

    use crate::{log, mem, Envelope, Event, Plugin};

    thread_local! {
        static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn with<P: Plugin, R>(f: impl FnOnce(&mut P) -> R) -> Option<R> {
        PLUGIN.with(|p| {
            let mut p = p.borrow_mut();
            p.as_mut()?.downcast_mut::<P>().map(f)
        })
    }

    pub fn init<P: Plugin>(ptr: i32, len: i32) -> i32 {
        std::panic::set_hook(Box::new(|info| log::error(&format!("panic: {info}"))));
        let bytes = mem::input(ptr, len);
        let config = if bytes.is_empty() {
            Ok(P::Config::default())
        } else {
            rmp_serde::from_slice::<P::Config>(bytes)
                .map_err(|e| crate::Error::decode("the config", e))
        };
        match config.and_then(P::init) {
            Ok(p) => {
                PLUGIN.with(|slot| *slot.borrow_mut() = Some(Box::new(p)));
                0
            }
            Err(e) => {
                log::error(&format!("pulp_init failed: {e}"));
                e.status.code().max(1)
            }
        }
    }

    pub fn step<P: Plugin>(ptr: i32, len: i32) -> i32 {
        let bytes = mem::input(ptr, len);
        let (envelope, event) = match Envelope::parse(bytes) {
            Ok(x) => x,
            Err(e) => {
                log::error(&format!("pulp_step: {e}"));
                return 0;
            }
        };
        let request = match &event {
            Event::Http(r) => Some(r.reply()),
            _ => None,
        };
        if let Some(Err(e)) = with::<P, _>(|p| p.step(&envelope, event)) {
            log::warn(&format!("step {}: {e}", envelope.call_number));
            // The client is not left waiting for the host's timeout. Refused when
            // the plugin answered it already, which is fine.
            if let Some(reply) = request {
                crate::http::failed(reply);
            }
        }
        0
    }

    pub fn on_call<P: Plugin>(np: i32, nl: i32, ap: i32, al: i32, rp: i32, rl: i32) -> i32 {
        let answer = match std::str::from_utf8(mem::input(np, nl)) {
            Err(_) => Err(crate::Error::new(
                crate::Status::BadEncoding,
                "the function name is not UTF-8",
            )),
            Ok(name) => {
                with::<P, _>(|p| p.on_call(name, mem::input(ap, al))).unwrap_or_else(|| {
                    Err(crate::Error::new(
                        crate::Status::Unavailable,
                        "the plugin is not initialised",
                    ))
                })
            }
        };
        let (bytes, code) = match &answer {
            Ok(b) => (b.as_slice(), 0),
            Err(e) => (e.message.as_bytes(), e.status.code().max(1)),
        };
        if !bytes.is_empty() {
            let p = mem::alloc(bytes.len() as i32);
            if p == 0 {
                return crate::Status::AllocFailed.code();
            }
            // SAFETY: `p` is a fresh block of `bytes.len()` bytes; `rp` and `rl` are
            // the host's two out-pointers in this memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    p as u32 as usize as *mut u8,
                    bytes.len(),
                );
                *(rp as u32 as usize as *mut u32) = p as u32;
                *(rl as u32 as usize as *mut u32) = bytes.len() as u32;
            }
        }
        code
    }

    pub fn shutdown<P: Plugin>() -> i32 {
        match with::<P, _>(|p| p.shutdown()) {
            Some(Err(e)) => {
                log::error(&format!("pulp_shutdown: {e}"));
                e.status.code().max(1)
            }
            _ => 0,
        }
    }
}
