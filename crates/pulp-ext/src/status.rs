//! The one status table of ABI §4, and the error type host functions return.

use std::fmt;

/// The status an import returns to the guest (ABI §4). `0`–`8` and `99` keep the Go host's meanings.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A required input was empty.
    Empty = 1,
    /// An input `(ptr, len)` lies outside linear memory.
    BadPointer = 2,
    /// Msgpack or UTF-8 input did not decode.
    BadEncoding = 3,
    /// Well-formed but not acceptable.
    Invalid = 4,
    /// The operation itself failed.
    Failed = 5,
    /// Not found.
    NotFound = 6,
    /// `pulp_alloc` trapped, returned 0 or an out-of-bounds pointer.
    AllocFailed = 7,
    /// An out-pointer lies outside linear memory.
    WriteFailed = 8,
    /// Outside the manifest's grants.
    Denied = 9,
    /// The backing service cannot be reached.
    Unavailable = 10,
    /// Over a size limit.
    TooLarge = 11,
    /// Timed out.
    Timeout = 12,
    /// The capability exists here but the manifest did not declare it.
    NotDeclared = 99,
}

impl Status {
    /// Every status, in table order.
    pub const ALL: [Status; 14] = [
        Status::Ok,
        Status::Empty,
        Status::BadPointer,
        Status::BadEncoding,
        Status::Invalid,
        Status::Failed,
        Status::NotFound,
        Status::AllocFailed,
        Status::WriteFailed,
        Status::Denied,
        Status::Unavailable,
        Status::TooLarge,
        Status::Timeout,
        Status::NotDeclared,
    ];

    /// The code the guest sees.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status with this code, if there is one.
    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The ABI name (`"BAD_POINTER"`).
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Empty => "EMPTY",
            Status::BadPointer => "BAD_POINTER",
            Status::BadEncoding => "BAD_ENCODING",
            Status::Invalid => "INVALID",
            Status::Failed => "FAILED",
            Status::NotFound => "NOT_FOUND",
            Status::AllocFailed => "ALLOC_FAILED",
            Status::WriteFailed => "WRITE_FAILED",
            Status::Denied => "DENIED",
            Status::Unavailable => "UNAVAILABLE",
            Status::TooLarge => "TOO_LARGE",
            Status::Timeout => "TIMEOUT",
            Status::NotDeclared => "NOT_DECLARED",
        }
    }

    /// An [`Error`] with this status and a message for `last_error`.
    ///
    /// ```
    /// use pulp_ext::Status;
    /// let err = Status::Invalid.err("path \"../x\" escapes the plugin's folder");
    /// assert_eq!(err.status(), Some(Status::Invalid));
    /// ```
    pub fn err(self, message: impl Into<String>) -> Error {
        Error::Status {
            status: self,
            message: message.into(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Why a host function did not succeed.
///
/// A status goes back to the guest (and its message to `last_error`); a trap
/// ends the guest's call. Traps are kept for exhausted limits (time, fuel,
/// memory) that were hit while the host called back into the guest.
#[derive(Debug)]
pub enum Error {
    /// Return this status; record the message for `last_error`.
    Status {
        /// The status returned to the guest.
        status: Status,
        /// What failed and why, for `last_error`.
        message: String,
    },
    /// End the guest's call with this trap.
    Trap(wasmtime::Error),
}

impl Error {
    /// The status, unless this is a trap.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::Trap(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Status { status, message } => write!(f, "{status}: {message}"),
            Error::Trap(e) => write!(f, "trap: {e:#}"),
        }
    }
}

impl std::error::Error for Error {}
