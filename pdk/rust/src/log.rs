//! Log lines in the host's log, tagged with the plugin's name (`logging`, always
//! bound). A line below the host's level costs almost nothing.

use crate::sys;

/// Levels of [`log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// 0.
    Trace,
    /// 1.
    Debug,
    /// 2.
    Info,
    /// 3.
    Warn,
    /// 4.
    Error,
}

/// Logs `msg` at `level` (newlines and control characters are escaped by the host).
///
/// ```no_run
/// use pulp_pdk::log::{log, Level};
/// log(Level::Warn, "disk almost full");
/// pulp_pdk::info!("{} notes", 3); // or the macros
/// ```
pub fn log(level: Level, msg: &str) {
    // SAFETY: (ptr, len) of a live string. A log line is not worth failing over:
    // its status is ignored.
    let _ = unsafe { sys::log(level as i32, msg.as_ptr(), msg.len()) };
}

/// Logs at trace level.
pub fn trace(msg: &str) {
    log(Level::Trace, msg)
}
/// Logs at debug level.
pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
/// Logs at info level.
pub fn info(msg: &str) {
    log(Level::Info, msg)
}
/// Logs at warn level.
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
/// Logs at error level.
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// `info!("{} notes", n)`: formats and logs at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::info(&format!($($t)*)) };
}

/// `warn!(...)`: formats and logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::warn(&format!($($t)*)) };
}

/// `error!(...)`: formats and logs at error level.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::error(&format!($($t)*)) };
}
