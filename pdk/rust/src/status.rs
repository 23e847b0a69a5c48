//! Statuses and errors: one table for every import (ABI.md §4).

use std::fmt;

/// What an import returned. The numbers are the ABI's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 1: a required input was empty.
    Empty,
    /// 2: an input lies outside linear memory.
    BadPointer,
    /// 3: msgpack or UTF-8 input did not decode.
    BadEncoding,
    /// 4: well-formed but not acceptable.
    Invalid,
    /// 5: the operation itself failed (SQL error, I/O error, remote error).
    Failed,
    /// 6: not found.
    NotFound,
    /// 7: `pulp_alloc` failed for a result.
    AllocFailed,
    /// 8: an out-pointer lies outside linear memory.
    WriteFailed,
    /// 9: outside the manifest's grants.
    Denied,
    /// 10: the backing service cannot be reached.
    Unavailable,
    /// 11: over a size limit or the plugin's host memory budget.
    TooLarge,
    /// 12: timed out.
    Timeout,
    /// 99: the manifest did not declare the capability.
    NotDeclared,
    /// A code this SDK does not know.
    Other(i32),
}

impl Status {
    /// The status of a non-zero code.
    pub fn from_code(code: i32) -> Status {
        match code {
            1 => Status::Empty,
            2 => Status::BadPointer,
            3 => Status::BadEncoding,
            4 => Status::Invalid,
            5 => Status::Failed,
            6 => Status::NotFound,
            7 => Status::AllocFailed,
            8 => Status::WriteFailed,
            9 => Status::Denied,
            10 => Status::Unavailable,
            11 => Status::TooLarge,
            12 => Status::Timeout,
            99 => Status::NotDeclared,
            n => Status::Other(n),
        }
    }

    /// The ABI's number for it.
    ///
    /// ```
    /// assert_eq!(pulp_pdk::Status::Denied.code(), 9);
    /// ```
    pub fn code(self) -> i32 {
        match self {
            Status::Empty => 1,
            Status::BadPointer => 2,
            Status::BadEncoding => 3,
            Status::Invalid => 4,
            Status::Failed => 5,
            Status::NotFound => 6,
            Status::AllocFailed => 7,
            Status::WriteFailed => 8,
            Status::Denied => 9,
            Status::Unavailable => 10,
            Status::TooLarge => 11,
            Status::Timeout => 12,
            Status::NotDeclared => 99,
            Status::Other(n) => n,
        }
    }
}

/// A failed import (its status and the host's `last_error` text), or a value this
/// SDK could not encode or decode ([`Status::BadEncoding`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What the host returned.
    pub status: Status,
    /// What failed and why, in the host's words.
    pub message: String,
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of this status and text (for a plugin's own failures).
    ///
    /// ```
    /// let e = pulp_pdk::Error::new(pulp_pdk::Status::Invalid, "no such note");
    /// assert_eq!(e.to_string(), "no such note (status 4)");
    /// ```
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn decode(what: &str, e: impl fmt::Display) -> Error {
        Error::new(Status::BadEncoding, format!("decoding {what}: {e}"))
    }

    pub(crate) fn encode(what: &str, e: impl fmt::Display) -> Error {
        Error::new(Status::BadEncoding, format!("encoding {what}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (status {})", self.message, self.status.code())
    }
}

impl std::error::Error for Error {}

/// The host's text for the most recent non-zero status this instance got (empty
/// when there was none). Every [`Error`] carries it already; this is for a plugin
/// that calls `sys` imports itself.
///
/// ```no_run
/// let why = pulp_pdk::last_error();
/// ```
pub fn last_error() -> String {
    let (mut p, mut n) = (0u32, 0u32);
    // SAFETY: the out-pointers are two live u32s; the host writes only them.
    let code = unsafe { crate::sys::last_error(&mut p, &mut n) };
    if code != 0 {
        return String::new();
    }
    String::from_utf8_lossy(&crate::mem::take(p, n)).into_owned()
}

/// `Ok` for 0; else the status with `last_error`'s text, prefixed by `what` (only
/// formatted then: a successful call allocates nothing for its label).
pub(crate) fn check(what: std::fmt::Arguments<'_>, code: i32) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let text = last_error();
    let message = if text.is_empty() {
        format!("{what}: status {code}")
    } else {
        format!("{what}: {text}")
    };
    Err(Error::new(Status::from_code(code), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in (1..=12).chain([99, 42]) {
            assert_eq!(Status::from_code(code).code(), code);
        }
    }

    #[test]
    fn a_failure_names_the_call_even_without_a_host() {
        let e = check(format_args!("sqlite_query"), 99).unwrap_err();
        assert_eq!(e.status, Status::NotDeclared);
        assert_eq!(e.message, "sqlite_query: status 99");
    }
}
