//! WebSocket (`transport.ws.inbound`): routes, sends and closes. Connections come
//! as [`crate::Event::WsOpen`], messages as [`crate::Event::WsFrame`].

use serde::Serialize;

use crate::status::check;
use crate::{msgpack::encode, sys, Result};

/// Registers a WebSocket route.
///
/// ```no_run
/// pulp_pdk::ws::register("/ws")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn register(path: &str) -> Result<()> {
    // SAFETY: (ptr, len) of a live string.
    check(format_args!("ws_register {path}"), unsafe {
        sys::ws_register(path.as_ptr(), path.len())
    })
}

#[derive(Serialize)]
struct Send<'a> {
    conn_id: u64,
    opcode: u8,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

fn send(conn_id: u64, opcode: u8, payload: &[u8]) -> Result<()> {
    let req = encode(&Send {
        conn_id,
        opcode,
        payload,
    })?;
    // SAFETY: (ptr, len) of a live buffer.
    check(format_args!("ws_send to connection {conn_id}"), unsafe {
        sys::ws_send(req.as_ptr(), req.len())
    })
}

/// Sends a text message ([`crate::Status::Timeout`] when 256 already wait).
///
/// ```no_run
/// # fn on(ev: pulp_pdk::Event) -> pulp_pdk::Result<()> {
/// if let pulp_pdk::Event::WsFrame(f) = ev {
///     pulp_pdk::ws::send_text(f.conn_id, f.text().unwrap_or("(binary)"))?;
/// }
/// # Ok(()) }
/// ```
pub fn send_text(conn_id: u64, text: &str) -> Result<()> {
    send(conn_id, 1, text.as_bytes())
}

/// Sends a binary message.
pub fn send_binary(conn_id: u64, data: &[u8]) -> Result<()> {
    send(conn_id, 2, data)
}

#[derive(Serialize)]
struct Close<'a> {
    conn_id: u64,
    code: u16,
    reason: &'a str,
}

/// Closes a connection with `code` (0: 1000) and a reason of at most 123 bytes.
///
/// ```no_run
/// pulp_pdk::ws::close(7, 4000, "bye")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn close(conn_id: u64, code: u16, reason: &str) -> Result<()> {
    let req = encode(&Close {
        conn_id,
        code,
        reason,
    })?;
    // SAFETY: (ptr, len) of a live buffer.
    check(format_args!("ws_close of connection {conn_id}"), unsafe {
        sys::ws_close(req.as_ptr(), req.len())
    })
}
