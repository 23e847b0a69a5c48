//! WebSocket routes: the upgrade, one task per connection, and `ws_send` / `ws_close`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pulp_ext::metrics::{self as m, metrics, Metrics};
use pulp_ext::{Charge, Event, Events, PostError, Status};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::header_map;
use crate::owner::Owner;
use crate::server::{lock, query_map, text, Body, Hub, Slot, Upgrade};

/// Frames a plugin may queue for one connection before `ws_send` says 12.
const QUEUE: usize = 256;

/// A frame waiting to be written, with the budget charge it holds until then.
type Outgoing = (Message, Option<Charge>);

/// The open WebSocket connections of one host's listener, by id: the server hands
/// this layer its WebSocket routes ([`Upgrade`]); the host functions send and close
/// through it.
#[derive(Default)]
pub(crate) struct Sockets {
    conns: Mutex<HashMap<u64, Conn>>,
    next: AtomicU64,
}

impl Upgrade for Sockets {
    fn serve(
        self: Arc<Self>,
        hub: &Arc<Hub>,
        owner: Arc<Owner>,
        req: Request<Incoming>,
        slot: Arc<Slot>,
    ) -> Response<Body> {
        upgrade(&self, hub, owner, req, slot)
    }
}

/// An open connection, as the host functions see it.
struct Conn {
    owner: Events,
    /// The version of the plugin that accepted it (a reload retires one).
    version: pulp_ext::Plugin,
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Notify>,
    /// Counts the connection in `pulp_ws_connections` while it is in the table.
    _open: m::Open,
}

impl Conn {
    /// Queues a close frame; a connection whose queue is full is dropped instead.
    fn close(self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if self
            .tx
            .try_send((Message::Close(Some(frame)), None))
            .is_err()
        {
            self.kill.notify_one();
        }
    }
}

/// Closes connection `id` (whoever owns it) with `code`: the host's own closes.
fn close_conn(ws: &Sockets, id: u64, code: u16, reason: &str) {
    let conn = lock(&ws.conns).remove(&id);
    if let Some(c) = conn {
        c.close(code, reason);
    }
}

/// What refuses an event of connection `id` that the plugin could not take: 1009.
fn refuse_with_1009(ws: &Arc<Sockets>, id: u64) -> impl Fn(&str) + Send + Sync + 'static {
    let ws = ws.clone();
    move |_why| close_conn(&ws, id, 1009, "the plugin cannot take a message this large")
}

/// Browsers send `Origin`; it must be the listener's own (same host) or allowed.
fn origin_allowed(owner: &Owner, req: &Request<Incoming>) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true; // not a browser: nothing to protect against
    };
    let origin = String::from_utf8_lossy(origin.as_bytes())
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let list = &owner.ws.allowed_origins;
    if list.iter().any(|o| o == "*" || *o == origin) {
        return true;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase());
    let same = |scheme: &str| {
        host.as_ref()
            .is_some_and(|h| origin == format!("{scheme}://{h}"))
    };
    same("http") || same("https")
}

/// Answers the handshake (101) and starts the connection's task once hyper hands
/// over the socket.
fn upgrade(
    ws: &Arc<Sockets>,
    hub: &Arc<Hub>,
    owner: Arc<Owner>,
    mut req: Request<Incoming>,
    slot: Arc<Slot>,
) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket handshake is a GET",
        );
    }
    if !origin_allowed(&owner, &req) {
        return text(
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket here",
        );
    }
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a WebSocket version 13 handshake",
        );
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let open = Open {
        conn_id: ws.next.fetch_add(1, Ordering::Relaxed) + 1, // ids start at 1
        path: crate::router::decode(req.uri().path()),
        query: query_map(req.uri().query()),
        headers: header_map(req.headers()),
    };
    // The connection exists for the plugin from `ws.open` on; the open event is
    // bounded like any other (queue and budget): when it cannot be queued, there is
    // no upgrade, and no close event to post later.
    let id = open.conn_id;
    let (tx, rx) = mpsc::channel(QUEUE);
    let kill = Arc::new(Notify::new());
    lock(&ws.conns).insert(
        id,
        Conn {
            owner: owner.events.clone(),
            version: owner.version.clone(),
            tx,
            kill: kill.clone(),
            _open: m::Open::new(
                metrics()
                    .ws_connections
                    .get_or_create_owned(&Metrics::plugin(&owner.name)),
            ),
        },
    );
    let posted = Event::new("ws.open", &open)
        .map_err(|e| e.to_string())
        .and_then(|e| {
            let e = e.on_refused(refuse_with_1009(ws, id));
            owner.events.post("ws", e).map_err(|e| e.to_string())
        });
    if let Err(e) = posted {
        lock(&ws.conns).remove(&id);
        let mut r = text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("plugin \"{}\" is busy: {e}", owner.name),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (hub, ws) = (hub.clone(), ws.clone());
    tokio::spawn(async move {
        let _slot = slot; // the connection counts until its task ends
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(owner.ws.max_frame_bytes);
        config.max_frame_size = Some(owner.ws.max_frame_bytes);
        let socket = match on_upgrade.await {
            Ok(upgraded) => Some(
                WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await,
            ),
            Err(_) => None,
        };
        run(hub, ws, owner, id, socket, rx, kill).await;
    });
    let mut r = Response::new(crate::server::full(""));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

#[derive(Serialize)]
struct Open {
    conn_id: u64,
    path: String,
    query: std::collections::BTreeMap<String, String>,
    headers: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Frame<'a> {
    conn_id: u64,
    opcode: u8,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

#[derive(Serialize)]
struct Closed {
    conn_id: u64,
    code: u16,
    reason: String,
}

/// One connection, after `ws.open` was queued: frames from the client become
/// `ws.frame` events, frames from the plugin are written with a deadline, a silent
/// client is pinged and then closed; `ws.close` last, always.
async fn run<S>(
    hub: Arc<Hub>,
    ws: Arc<Sockets>,
    owner: Arc<Owner>,
    id: u64,
    socket: Option<WebSocketStream<S>>,
    mut rx: mpsc::Receiver<Outgoing>,
    kill: Arc<Notify>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut shutdown = hub.shutdown.clone();
    // 65535: the connection ended without a close frame (ABI §3).
    let (mut code, mut reason) = (65535u16, String::new());
    let idle = Duration::from_millis(hub.settings.ws_idle_ms.max(1));
    let mut heard = Instant::now();
    let mut pinged = false;
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
    let Some(mut socket) = socket else {
        return closed(&ws, &owner, id, code, reason);
    };
    loop {
        tokio::select! {
            msg = socket.next() => {
                (heard, pinged) = (Instant::now(), false);
                match msg {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let opcode = if m.is_text() { 1 } else { 2 };
                    if !post_frame(&ws, &owner, id, opcode, &m.into_data()).await {
                        (code, reason) = (1013, "the plugin is not keeping up".into());
                        close_with(&mut socket, CloseCode::Again, &reason).await;
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    (code, reason) = match frame {
                        Some(f) => (u16::from(f.code), f.reason.to_string()),
                        None => (1005, String::new()),
                    };
                    // tungstenite answers the close; drain until the socket ends.
                    let _ = tokio::time::timeout(owner.ws.send_timeout, socket.close(None)).await;
                    break;
                }
                Some(Ok(_)) => {} // ping, pong: answered by tungstenite
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                    (code, reason) = (1009, format!("a message over {} bytes", owner.ws.max_frame_bytes));
                    close_with(&mut socket, CloseCode::Size, &reason).await;
                    break;
                }
                Some(Err(_)) | None => break,
            }},
            _ = check.tick() => {
                if heard.elapsed() < idle {
                    continue;
                }
                if pinged {
                    (code, reason) = (1001, "idle: no answer to a ping".into());
                    close_with(&mut socket, CloseCode::Away, &reason).await;
                    break;
                }
                pinged = true;
                let ping = socket.send(Message::Ping(Default::default()));
                if !matches!(tokio::time::timeout(owner.ws.send_timeout, ping).await, Ok(Ok(()))) {
                    break;
                }
            }
            out = rx.recv() => match out {
                Some((m, _charge)) => {
                    let closing = matches!(m, Message::Close(_));
                    match tokio::time::timeout(owner.ws.send_timeout, socket.send(m)).await {
                        Ok(Ok(())) if !closing => {}
                        Ok(Ok(())) => {
                            // Wait (bounded) for the client's answering close frame.
                            let until = Instant::now() + owner.ws.send_timeout;
                            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until.into(), socket.next()).await {
                                if let Message::Close(Some(f)) = m {
                                    (code, reason) = (u16::from(f.code), f.reason.to_string());
                                }
                            }
                            break;
                        }
                        _ => break, // a client that does not read within the deadline is dropped
                    }
                }
                None => break,
            },
            _ = kill.notified() => break,
            _ = shutdown.changed() => {
                close_with(&mut socket, CloseCode::Away, "the host is stopping").await;
                break;
            }
        }
    }
    closed(&ws, &owner, id, code, reason);
}

/// The connection is gone: forget it and tell the plugin (`ws.close`, never dropped
/// while the plugin runs; bounded by the connections counted).
fn closed(ws: &Sockets, owner: &Owner, id: u64, code: u16, reason: String) {
    lock(&ws.conns).remove(&id);
    if let Ok(e) = Event::new(
        "ws.close",
        &Closed {
            conn_id: id,
            code,
            reason,
        },
    ) {
        owner.events.post_always("ws", e);
    }
}

/// Posts a frame, waiting for room in the plugin's queue up to the send deadline
/// (the socket is not read meanwhile: backpressure on the client). False when it
/// never made it.
async fn post_frame(
    ws: &Arc<Sockets>,
    owner: &Owner,
    conn_id: u64,
    opcode: u8,
    payload: &[u8],
) -> bool {
    let Ok(e) = Event::new(
        "ws.frame",
        &Frame {
            conn_id,
            opcode,
            payload,
        },
    ) else {
        return false;
    };
    let e = e.on_refused(refuse_with_1009(ws, conn_id));
    let until = Instant::now() + owner.ws.send_timeout;
    let mut wait = Duration::from_millis(1);
    loop {
        match owner.events.post("ws", e.clone()) {
            Ok(()) => return true,
            Err(PostError::Full { .. } | PostError::OverBudget(_)) if Instant::now() < until => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(50));
            }
            Err(_) => return false,
        }
    }
}

/// Sends a close frame the host initiates (waiting at most a second for the client).
async fn close_with<S>(socket: &mut WebSocketStream<S>, code: CloseCode, reason: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(Some(frame))).await;
}

impl Sockets {
    /// Closes every connection of a plugin with `code` (1012 on a restart, 1001 when it
    /// stops), or only those one version of it accepted (`only`: a reload retired it).
    pub(crate) fn close_all(&self, owner: &Events, only: Option<&pulp_ext::Plugin>, code: u16) {
        let mine: Vec<Conn> = {
            let mut conns = lock(&self.conns);
            let ids: Vec<u64> = conns
                .iter()
                .filter(|(_, c)| {
                    c.owner.same_as(owner) && only.is_none_or(|v| c.version.same_version(v))
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| conns.remove(id)).collect()
        };
        for c in mine {
            c.close(code, "the plugin instance went away");
        }
    }

    /// `ws_send`: queues a frame on one of `owner`'s connections (4 for another's or
    /// an unknown one, 12 when the client has not read its queue).
    pub(crate) fn send(&self, owner: &Owner, req: SendRequest) -> Result<(), pulp_ext::Error> {
        let payload = req.payload.map(|b| b.into_vec()).unwrap_or_default();
        let msg = match req.opcode {
            1 => Message::text(String::from_utf8(payload).map_err(|_| {
                Status::BadEncoding.err("ws_send: a text frame (opcode 1) must be UTF-8")
            })?),
            2 => Message::binary(payload),
            op => {
                return Err(Status::Invalid.err(format!(
                    "ws_send: opcode {op} is neither 1 (text) nor 2 (binary)"
                )))
            }
        };
        let conns = lock(&self.conns);
        let conn = conns
            .get(&req.conn_id)
            .filter(|k| k.owner.same_as(&owner.events))
            .ok_or_else(|| unknown("ws_send", req.conn_id))?;
        // Held until the frame is written: a client that does not read costs
        // the plugin's budget, not the host's memory.
        let charge = owner.budget.charge(msg.len())?;
        conn.tx.try_send((msg, Some(charge))).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Status::Timeout.err(format!(
                "ws_send: connection {} has {QUEUE} frames waiting; the client is not reading",
                req.conn_id
            )),
            mpsc::error::TrySendError::Closed(_) => unknown("ws_send", req.conn_id),
        })
    }

    /// `ws_close`: closes one of `owner`'s connections with a code an endpoint may send.
    pub(crate) fn close(&self, owner: &Owner, req: CloseRequest) -> Result<(), pulp_ext::Error> {
        let code = if req.code == 0 { 1000 } else { req.code };
        if !sendable(code) {
            return Err(Status::Invalid.err(format!(
                "ws_close: {code} is not a close code an endpoint may send"
            )));
        }
        if req.reason.len() > 123 {
            return Err(Status::Invalid.err("ws_close: the reason is over 123 bytes"));
        }
        let mut conns = lock(&self.conns);
        if !conns
            .get(&req.conn_id)
            .is_some_and(|k| k.owner.same_as(&owner.events))
        {
            return Err(unknown("ws_close", req.conn_id));
        }
        conns
            .remove(&req.conn_id)
            .expect("just found")
            .close(code, &req.reason);
        Ok(())
    }
}

/// `ws_send`'s request.
#[derive(Deserialize)]
pub(crate) struct SendRequest {
    conn_id: u64,
    opcode: u8,
    #[serde(default)]
    payload: Option<serde_bytes::ByteBuf>,
}

/// `ws_close`'s request.
#[derive(Deserialize)]
pub(crate) struct CloseRequest {
    conn_id: u64,
    #[serde(default)]
    code: u16,
    #[serde(default)]
    reason: String,
}

/// Close codes an endpoint may send (RFC 6455 §7.4).
fn sendable(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn unknown(what: &str, id: u64) -> pulp_ext::Error {
    Status::Invalid.err(format!("{what}: connection {id} is unknown or closed"))
}
