//! Server-sent event routes: subscribers of a path, `sse_register` and `sse_emit`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use pulp_ext::metrics::{metrics, Metrics, Open};
use pulp_ext::{Error, Events, Status};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::owner::Owner;
use crate::server::{charged, lock, text, Body, Hub, Slot, Upgrade};

/// Events a subscriber may have unread before it is dropped as too slow.
const BACKLOG: usize = 256;

/// The SSE streams of one host's listener, by path: the server hands this layer its
/// SSE routes ([`Upgrade`]); the host functions register and emit through it.
#[derive(Default)]
pub(crate) struct Streams {
    streams: Mutex<HashMap<String, Stream>>,
    next: AtomicU64,
}

impl Upgrade for Streams {
    fn serve(
        self: Arc<Self>,
        hub: &Arc<Hub>,
        owner: Arc<Owner>,
        req: Request<Incoming>,
        _slot: Arc<Slot>,
    ) -> Response<Body> {
        subscribe(&self, hub, &owner, req)
    }
}

/// A registered SSE path and its subscribers (by subscriber id).
struct Stream {
    owner: Events,
    subscribers: Vec<(u64, mpsc::Sender<Bytes>)>,
}

/// Subscribers of `path` on this host's listener (0 when nothing is registered
/// there): a diagnostic for operators and tests.
pub fn subscribers(shared: &pulp_ext::Shared, path: &str) -> usize {
    shared
        .get::<Streams>()
        .and_then(|s| lock(&s.streams).get(path).map(|s| s.subscribers.len()))
        .unwrap_or(0)
}

/// Removes a subscriber from its stream the moment its response body is dropped
/// (the client went away, its connection timed out, or the host stops).
struct Unsubscribe {
    sse: Arc<Streams>,
    path: String,
    id: u64,
    /// Counts the subscriber in `pulp_sse_connections` while it is served.
    _open: Open,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        if let Some(s) = lock(&self.sse.streams).get_mut(&self.path) {
            s.subscribers.retain(|(id, _)| *id != self.id);
        }
    }
}

/// A GET on a registered path: a new subscriber, served until it disconnects, is
/// too slow, or the plugin stops.
fn subscribe(
    sse: &Arc<Streams>,
    hub: &Arc<Hub>,
    owner: &Owner,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let (tx, rx) = mpsc::channel::<Bytes>(BACKLOG);
    let id = sse.next.fetch_add(1, Ordering::Relaxed);
    {
        let mut streams = lock(&sse.streams);
        match streams.get_mut(&path) {
            Some(s) if s.owner.same_as(&owner.events) => s.subscribers.push((id, tx)),
            _ => return text(StatusCode::NOT_FOUND, format!("no event stream at {path}")),
        }
    }
    let gone = Unsubscribe {
        sse: sse.clone(),
        path,
        id,
        _open: Open::new(
            metrics()
                .sse_connections
                .get_or_create_owned(&Metrics::plugin(&owner.name)),
        ),
    };
    let keepalive = Duration::from_millis(hub.settings.sse_keepalive_ms.max(1));
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let stream = futures_util::stream::unfold(
        (rx, tick, hub.shutdown.clone(), gone),
        |(mut rx, mut tick, mut shutdown, gone)| async move {
            let chunk = tokio::select! {
                m = rx.recv() => m?,
                _ = tick.tick() => Bytes::from_static(b": keep-alive\n\n"),
                _ = shutdown.changed() => return None,
            };
            let frame = Ok::<_, std::convert::Infallible>(Frame::data(chunk));
            Some((frame, (rx, tick, shutdown, gone)))
        },
    );
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

impl Streams {
    /// Drops a stopped plugin's streams (their subscribers' bodies end).
    pub(crate) fn forget(&self, owner: &Events) {
        lock(&self.streams).retain(|_, s| !s.owner.same_as(owner));
    }

    /// `sse_register` (after the route is added): `path` is `owner`'s stream. The
    /// same plugin registering again (a new instance) keeps its subscribers; a path
    /// that was another plugin's (one that is stopping) starts empty: that plugin's
    /// subscribers are dropped, their streams end, and never see the new owner's events.
    pub(crate) fn register(&self, owner: &Owner, path: String) {
        let mut streams = lock(&self.streams);
        let stream = streams.entry(path).or_insert_with(|| Stream {
            owner: owner.events.clone(),
            subscribers: Vec::new(),
        });
        if !stream.owner.same_as(&owner.events) {
            stream.subscribers.clear();
            stream.owner = owner.events.clone();
        }
    }

    /// `sse_emit`: one event to every subscriber of one of `owner`'s paths.
    pub(crate) fn emit(&self, owner: &Owner, req: EmitRequest) -> Result<(), Error> {
        // Charged before it is built: one line per CR/LF makes the text
        // up to seven times its size.
        let size = formatted_len(req.id.as_deref(), req.event.as_deref(), &req.data);
        let charge = owner.budget.charge(size)?;
        let bytes = format(req.id.as_deref(), req.event.as_deref(), &req.data)?;
        // Every subscriber's copy is a view of this one charged buffer: the
        // charge lasts until the last subscriber has written (or dropped) it.
        let emitted = charged(bytes, charge);
        let mut streams = lock(&self.streams);
        let stream = streams
            .get_mut(&req.path)
            .filter(|s| s.owner.same_as(&owner.events))
            .ok_or_else(|| {
                Status::Invalid.err(format!(
                    "sse_emit: {:?} is not an SSE path this plugin registered",
                    req.path
                ))
            })?;
        // A subscriber whose backlog is full is dropped: it never blocks the plugin.
        stream
            .subscribers
            .retain(|(_, s)| s.try_send(emitted.clone()).is_ok());
        Ok(())
    }
}

/// The size of [`format`]'s output, computed without building it.
fn formatted_len(id: Option<&str>, event: Option<&str>, data: &str) -> usize {
    let fields: usize = [("id", id), ("event", event)]
        .iter()
        .filter_map(|(f, v)| v.map(|v| f.len() + 3 + v.len()))
        .sum();
    let breaks = data.matches(['\r', '\n']).count();
    let lines = 1 + breaks - data.matches("\r\n").count();
    // Each line: "data: " + its text + "\n"; the breaks themselves are not kept.
    fields + lines * 7 + (data.len() - breaks) + 1
}

/// The bytes of one event: CR/LF in `id` or `event` is refused, `data` lines are
/// split on CR, LF and CRLF.
fn format(id: Option<&str>, event: Option<&str>, data: &str) -> Result<Bytes, Error> {
    let mut out = String::with_capacity(formatted_len(id, event, data));
    for (field, value) in [("id", id), ("event", event)] {
        if let Some(v) = value {
            if v.contains(['\r', '\n', '\0']) {
                return Err(
                    Status::Invalid.err(format!("sse_emit: {field} {v:?} contains CR, LF or NUL"))
                );
            }
            out.push_str(field);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
    }
    let mut rest = data;
    loop {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        out.push_str("data: ");
        out.push_str(&rest[..end]);
        out.push('\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.push('\n');
    Ok(Bytes::from(out))
}

/// `sse_emit`'s request.
#[derive(Deserialize)]
pub(crate) struct EmitRequest {
    path: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    event: Option<String>,
    data: String,
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn events_are_framed_and_sanitised() {
        let b = format(Some("7"), Some("tick"), "a\r\nb\rc\nd").unwrap();
        assert_eq!(
            &b[..],
            b"id: 7\nevent: tick\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(&format(None, None, "").unwrap()[..], b"data: \n\n");
        assert!(format(Some("1\n"), None, "x").is_err());
        assert!(format(None, Some("a\rb"), "x").is_err());
        for (id, ev, data) in [
            (Some("7"), Some("tick"), "a\r\nb\rc\nd"),
            (None, None, ""),
            (None, None, "\n\n\r\r\n"),
            (Some(""), None, "x\r"),
        ] {
            assert_eq!(
                super::formatted_len(id, ev, data),
                format(id, ev, data).unwrap().len(),
                "{data:?}"
            );
        }
    }
}
