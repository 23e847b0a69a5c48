#![doc = include_str!("../README.md")]

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
