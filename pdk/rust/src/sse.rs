//! Server-sent events (`transport.sse`).

use serde::Serialize;

use crate::status::check;
use crate::{msgpack::encode, sys, Result};

/// Registers an SSE path (a plain path).
///
/// ```no_run
/// pulp_pdk::sse::register("/clock")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn register(path: &str) -> Result<()> {
    // SAFETY: (ptr, len) of a live string.
    check(format_args!("sse_register {path}"), unsafe {
        sys::sse_register(path.as_ptr(), path.len())
    })
}

#[derive(Serialize)]
struct Emit<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    data: &'a str,
}

/// Sends an event to every subscriber of `path` (never waits for them).
///
/// ```no_run
/// pulp_pdk::sse::emit("/clock", Some("tick"), Some("42"), "1764028800")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn emit(path: &str, event: Option<&str>, id: Option<&str>, data: &str) -> Result<()> {
    let req = encode(&Emit {
        path,
        id,
        event,
        data,
    })?;
    // SAFETY: (ptr, len) of a live buffer.
    check(format_args!("sse_emit on {path}"), unsafe {
        sys::sse_emit(req.as_ptr(), req.len())
    })
}
